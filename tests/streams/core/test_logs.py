"""Logging: text or JSON lines, levels, and no secret in any line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from reckon.streams.core import logs
from reckon.streams.core.redact import redact


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_redact_masks_url_passwords_pairs_and_known_secrets() -> None:
    text = "https://reckon:s3cret@ch:8443/db password=abc token hunter2"
    assert redact(text, ["hunter2"]) == "https://reckon:***@ch:8443/db password=*** token ***"
    assert redact("chdb:///srv/store and http://user@host/") == "chdb:///srv/store and http://user@host/"


def test_json_lines_with_secrets_masked() -> None:
    out = io.StringIO()
    logs.configure("INFO", "json", secrets=["hunter3"], stream=out)
    logging.getLogger("reckon.test").info("connecting to %s as %s", "http://u:pw@h:8123/db", "hunter3")
    try:
        raise ValueError("password=hunter4")
    except ValueError:
        logging.getLogger("reckon.test").exception("failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "reckon.test" and "time" in first
    assert first["message"] == "connecting to http://u:***@h:8123/db as ***"
    assert "hunter4" not in second["exc_info"] and "password=***" in second["exc_info"]


def test_level_applies_to_reckon_and_libraries_stay_at_warning() -> None:
    out = io.StringIO()
    logs.configure("INFO", "text", stream=out)
    logging.getLogger("reckon.x").info("kept")
    logging.getLogger("faust.worker").info("faust chatter")
    logging.getLogger("aiokafka.conn").warning("library warning")
    text = out.getvalue()
    assert "kept" in text and "faust chatter" not in text and "library warning" in text
    assert "\x1b[" not in text
    out.truncate(0)
    logs.configure("DEBUG", "text", stream=out)
    logging.getLogger("faust.worker").debug("now shown")
    assert "now shown" in out.getvalue()


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_a_clients_malformed_request_is_one_info_line_not_an_error_traceback(level: str) -> None:
    from aiohttp.http_exceptions import LineTooLong

    out = io.StringIO()
    logs.configure(level, "text", stream=out)
    server = logging.getLogger("aiohttp.server")
    try:
        raise LineTooLong(b"/aaaa" * 3000, 8190)
    except LineTooLong:
        server.exception("Error handling request from %s", "127.0.0.1")
    try:
        raise KeyError("a bug of ours")
    except KeyError:
        server.exception("Error handling request from %s", "127.0.0.1")      # still a traceback
    from aiohttp.web_protocol import RequestPayloadError
    try:               # a gzip body that is not, drained again once the handler answered 400
        raise RequestPayloadError("Can not decode content-encoding: gzip")
    except RequestPayloadError:
        server.exception("Unhandled exception")
    text = out.getvalue()
    assert text.count("Traceback") == 1 and "KeyError" in text
    lines = [line for line in text.splitlines() if "refused a request" in line]
    assert len(lines) == (2 if level == "INFO" else 0)
    assert not lines or lines[1].endswith("refused a request body: Can not decode content-encoding: gzip")
    assert not lines or (" INFO aiohttp.server refused a request from 127.0.0.1: Got more than 8190" in lines[0]
                         and len(lines[0]) < 400)


def test_a_library_repeating_itself_is_said_once_per_interval_with_a_count(monkeypatch) -> None:
    out = io.StringIO()
    logs.configure("INFO", "text", stream=out)
    clock = iter([100.0] * 200 + [130.0, 131.0])
    monkeypatch.setattr(logging.time, "time", lambda: next(clock))    # record.created
    conn = logging.getLogger("aiokafka.conn")
    for _ in range(200):
        conn.error("Unable connect to node with id %s: %s", 111, "refused")
    logging.getLogger("reckon.worker").error("own errors are never held back")
    conn.error("Unable connect to node with id %s: %s", 111, "refused")
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 4)[-1] for line in lines] == [
        "Unable connect to node with id 111: refused",
        "own errors are never held back",
        "Unable connect to node with id 111: refused (and 199 more like it in the last 31 s)"]
