"""The common start failures end in one line naming the cause, with no secret in it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reckon.streams.kafka.broker import free_port


def _reckon(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECKON_")}
    return subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", *args], env={**clean, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_web_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = _one_line(_reckon(["worker"], {"RECKON_WEB_PORT": str(port), "RECKON_DATA_DIR": str(tmp_path)}, tmp_path))
    assert line.startswith("error: setting RECKON_WEB_PORT: cannot bind 127.0.0.1:") and "in use" in line


def test_unreachable_broker(tmp_path: Path) -> None:
    env = {"RECKON_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "RECKON_DATA_DIR": str(tmp_path),
           "RECKON_WEB_PORT": str(free_port())}
    for command in (["worker"], ["replay", "--events", "5"], ["serve"]):
        line = _one_line(_reckon(command, env, tmp_path))
        assert "cannot reach Kafka at RECKON_BOOTSTRAP_SERVERS" in line and "refused" in line


@pytest.mark.parametrize("answer", [b"HTTP/1.0 400 Bad Request\r\n\r\n", None])
def test_a_listener_that_is_not_kafka(tmp_path: Path, answer: bytes | None) -> None:
    # A wrong port that accepts connections (ClickHouse's, a web server's): the clients would
    # retry, then fail with a traceback. It either answers something else or nothing at all.
    import threading

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def serve() -> None:
            for _ in range(2):
                conn, _ = server.accept()
                conn.recv(64)
                if answer is not None:
                    conn.sendall(answer)
                    conn.close()
                else:
                    held.append(conn)       # open and silent until the test ends

        held: list[socket.socket] = []
        threading.Thread(target=serve, daemon=True).start()
        env = {"RECKON_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "RECKON_DATA_DIR": str(tmp_path),
               "RECKON_WEB_PORT": str(free_port())}
        for command in (["replay", "--events", "5"], ["worker"]):
            line = _one_line(_reckon(command, env, tmp_path))
            assert line.startswith(f"error: cannot reach Kafka at RECKON_BOOTSTRAP_SERVERS: 127.0.0.1:{port}: ")
            assert line.endswith("is this a Kafka listener?"), line
            assert ("not as Kafka does" if answer else "no Kafka answer within 5 s") in line


def test_malformed_json_setting(tmp_path: Path) -> None:
    line = _one_line(_reckon(["worker"], {"RECKON_DAILY_BUDGET_USD": "{acme: 5"}, tmp_path))
    assert line == "error: setting RECKON_DAILY_BUDGET_USD: is not valid JSON"


def test_unreachable_clickhouse_error_masks_the_password(tmp_path: Path) -> None:
    port = free_port()
    dsn = f"http://reckon:hunter2@127.0.0.1:{port}/reckon"
    for command in (["migrate"], ["costs"], ["retrain"]):
        # one line: the driver's own warning of the same failure is not printed before it
        line = _one_line(_reckon(command, {"RECKON_CLICKHOUSE_DSN": dsn}, tmp_path))
        assert line == f"error: cannot reach ClickHouse at http://127.0.0.1:{port}: Connection refused", command


def test_settings_print_no_secret(tmp_path: Path) -> None:
    """A chat webhook's path is its token, and tenant tokens are tokens: `reckon settings` printed both."""
    env = {"RECKON_ALERT_WEBHOOK_URL": "https://hooks.chat.example/services/T0/B0/s3cr3tpath",
           "RECKON_WEB_TENANT_TOKENS": '{"acme": "acme-s3cr3t-0123456789"}',
           "RECKON_CLICKHOUSE_DSN": "https://reckon:hunter2@ch:8443/reckon"}
    result = _reckon(["settings"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "RECKON_ALERT_WEBHOOK_URL=https://hooks.chat.example/***" in lines
    assert 'RECKON_WEB_TENANT_TOKENS={"acme": "***"}' in lines
    assert "RECKON_CLICKHOUSE_DSN=https://reckon:***@ch:8443/reckon" in lines
    assert "s3cr3t" not in result.stdout and "hunter2" not in result.stdout
    # structured settings as they are written (a Python repr with Decimal('50') was not), and every setting
    shown = _reckon(["settings"], {"RECKON_DAILY_BUDGET_USD": '{"acme": 50, "*": 100.5}', "RECKON_TENANTS": "acme,b",
                                   "RECKON_SECRETS_DIR": str(tmp_path)}, tmp_path).stdout.splitlines()
    assert 'RECKON_DAILY_BUDGET_USD={"acme": 50.0, "*": 100.5}' in shown and "RECKON_TENANTS=acme,b" in shown
    assert f"RECKON_SECRETS_DIR={tmp_path}" in shown
    assert "RECKON_WORKER_NAME=" in shown        # unset: each worker names itself, not this command's pid
    # a relative data dir is from the working directory, and says so where it cannot be mistaken for a value
    assert result.stderr.strip() == f"RECKON_DATA_DIR is relative: from this directory it is {tmp_path / '.reckon'}"
    absolute = _reckon(["settings"], {"RECKON_DATA_DIR": str(tmp_path / "d")}, tmp_path)
    assert f"RECKON_DATA_DIR={tmp_path / 'd'}" in absolute.stdout.splitlines() and absolute.stderr == ""


@pytest.mark.integration
def test_stack_up_prints_the_dsn_without_its_password(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECKON_")}
    proc = subprocess.Popen([sys.executable, "-m", "reckon.streams.cli.main", "stack", "up"], cwd=tmp_path,
                            env={**clean, "RECKON_CLICKHOUSE_DSN": "https://reckon:hunter2@ch:8443/reckon"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(30)
    assert lines[0].startswith("RECKON_BOOTSTRAP_SERVERS=127.0.0.1:")
    assert lines[1].strip() == "RECKON_CLICKHOUSE_DSN=https://reckon:***@ch:8443/reckon"


def test_usage_mistakes_are_one_line(tmp_path: Path) -> None:
    for args, says in [(["replay", "--bogus"], "error: No such option: --bogus (`reckon replay --help`)"),
                       (["replay", "--bad-fraction", "2"], "error: Invalid value for '--bad-fraction': Input should "
                                                           "be less than or equal to 0.99 (`reckon replay --help`)"),
                       (["replay", "--rate", "inf"], "error: --rate must be a finite number of events per second, "
                                                     "not inf"),
                       (["replay", "--format", "sessions"], "error: --format sessions reads a file: give it with "
                                                            "--file"),
                       (["demo", "--train-seconds", "inf"], "error: --train-seconds must be a finite number of "
                                                             "seconds, not inf"),
                       # found after the whole replay, by the retrain, before
                       (["demo", "--retrain", "--events", "10"], "error: --retrain learns from the replayed clicks: "
                                                                 "give --events 1000 or more"),
                       (["train"], "error: Missing argument 'DATA'. (`reckon train --help`)")]:
        assert _one_line(_reckon(args, {}, tmp_path)) == says


def test_options_that_would_be_ignored_are_refused(tmp_path: Path) -> None:
    """Options that mean nothing beside another were silently dropped: the user got other work."""
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    for args, says in [(["replay", "--file", str(events), "--events", "5", "--seed", "2"],
                        "error: --events, --seed shape generated events; --file replays its own "
                        "(`reckon replay --help`)"),
                       (["retrain", "--events", str(events), "--url", "http://127.0.0.1:1"],
                        "error: Invalid value for '--events': --events and --url are two sources of clicks: give one "
                        "(`reckon retrain --help`)")]:
        assert _one_line(_reckon(args, {}, tmp_path)) == says


def test_a_worker_url_that_does_not_parse_is_one_line(tmp_path: Path) -> None:
    for args in (["costs", "--url", "http://[::1"], ["retrain", "--url", "http://host:port"]):   # were tracebacks
        assert "error: cannot reach http://" in _one_line(_reckon(args, {}, tmp_path)), args


def test_settings_files_and_dsns_that_cannot_work(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe\x00RECKON_LOG_LEVEL=info\n")
    assert _one_line(_reckon(["settings"], {}, tmp_path)).startswith(
        "error: setting RECKON_* (.env or RECKON_SECRETS_DIR): a settings file is not UTF-8 text")
    (tmp_path / ".env").unlink()
    # the price settings are checked as a worker checks them (settings said all was well)
    assert _one_line(_reckon(["settings"], {"RECKON_PRICE_VCPU_HOUR": "abc"}, tmp_path)).endswith(
        "RECKON_PRICE_VCPU_HOUR = 'abc' is not a number")
    assert _one_line(_reckon(["settings"], {"RECKON_PRICE_SHEET": "nosuch.toml"}, tmp_path)) == (
        "error: price sheet nosuch.toml: file not found")
    # chdb:// alone made a store in the working directory; a port that is no number meant 8123
    for dsn, says in [("chdb://", "chdb:// needs the store's directory"),
                      ("http://reckon:hunter2@host:abc/db", "its port must be a number"),
                      ("https://", "needs a host")]:
        line = _one_line(_reckon(["costs"], {"RECKON_CLICKHOUSE_DSN": dsn}, tmp_path))
        assert line.startswith("error: setting RECKON_CLICKHOUSE_DSN: ") and says in line and "hunter2" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_a_path_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    env = {"RECKON_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}"}
    assert _reckon(["migrate"], env, tmp_path, timeout=120).returncode == 0
    result = _reckon(["costs", "--html", str(tmp_path / "missing" / "report.html")], env, tmp_path, timeout=120)
    # refused before the report is built (it failed writing, after the work)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: --html {tmp_path / 'missing' / 'report.html'}: {tmp_path / 'missing'} is not a writable directory"
    ], result.stderr


def test_retrain_reads_the_store_costs_reads(tmp_path: Path) -> None:
    """After `reckon demo` the only store is the demo's: `reckon retrain` reads it, as `reckon
    costs` does, instead of refusing for want of <data dir>/clickhouse."""
    data = tmp_path / "data"
    demo = {"RECKON_CLICKHOUSE_DSN": f"chdb://{data / 'demo' / 'clickhouse'}"}
    assert _reckon(["migrate"], demo, tmp_path, timeout=120).returncode == 0
    env = {"RECKON_DATA_DIR": str(data), "RECKON_MODEL_REGISTRY": str(tmp_path / "no-models")}
    missing = _reckon(["retrain"], {"RECKON_DATA_DIR": str(tmp_path / "none")}, tmp_path)
    assert "no ClickHouse store at" in _one_line(missing) and "reckon demo" in missing.stderr
    found = _reckon(["retrain", "--json"], env, tmp_path, timeout=120)
    assert f"reading {data / 'demo' / 'clickhouse'} (" in found.stderr, found.stderr
    assert "no ClickHouse store" not in found.stdout and json.loads(found.stdout.strip().splitlines()[-1])["error"]


def test_costs_refuses_price_overrides_a_worker_would_refuse(tmp_path: Path) -> None:
    """`reckon costs` printed its usual report under a bad or misspelled RECKON_PRICE_*."""
    for env, says in [({"RECKON_PRICE_PEOPLE_HOUR": "abc"}, "RECKON_PRICE_PEOPLE_HOUR = 'abc' is not a number"),
                      ({"RECKON_PRICE_PEOPL_HOUR": "0"}, "RECKON_PRICE_PEOPL_HOUR: no such price")]:
        line = _one_line(_reckon(["costs"], {"RECKON_DATA_DIR": str(tmp_path), **env}, tmp_path))
        assert line.startswith("error: price sheet") and says in line, line
    valid = _reckon(["costs"], {"RECKON_DATA_DIR": str(tmp_path), "RECKON_PRICE_PEOPLE_HOUR": "0"}, tmp_path)
    assert "stored costs keep the prices they were recorded with" in valid.stderr


@pytest.mark.integration
def test_a_sasl_protocol_against_a_listener_without_it_is_one_line(fresh_broker, tmp_path: Path) -> None:
    """The clients' SaslHandshake failure was a 77-line traceback (replay) or 120 lines of retries (worker)."""
    env = {"RECKON_BOOTSTRAP_SERVERS": fresh_broker.bootstrap_servers, "RECKON_DATA_DIR": str(tmp_path),
           "RECKON_WEB_PORT": str(free_port()), "RECKON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "RECKON_KAFKA_SASL_USERNAME": "u", "RECKON_KAFKA_SASL_PASSWORD": "p4ssw0rd",
           "RECKON_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}
    for command in (["replay", "--events", "5"], ["worker"]):
        line = _one_line(_reckon(command, env, tmp_path))
        assert line.startswith("error: cannot reach Kafka at RECKON_BOOTSTRAP_SERVERS: ") and "SASL" in line, line
        assert "p4ssw0rd" not in line
    nameless = _one_line(_reckon(["replay"], {**env, "RECKON_KAFKA_SASL_USERNAME": ""}, tmp_path))
    assert nameless.startswith("error: setting RECKON_KAFKA_SASL_USERNAME: is empty, but"), nameless


def test_serve_start_mistakes_are_one_line(fresh_broker, tmp_path: Path) -> None:
    line = _one_line(_reckon(["serve"], {}, tmp_path))
    assert line == ("error: setting RECKON_BOOTSTRAP_SERVERS: serve reads the workers' recommendations topic "
                    "(`reckon stack up` prints where its broker is)")
    env = {"RECKON_BOOTSTRAP_SERVERS": fresh_broker.bootstrap_servers}
    for url, why in (("ftp://127.0.0.1:6066", "must start http:// or https://"), ("http://:6066", "needs a host"),
                     ("http://host:port", "its port must be a number")):
        assert why in _one_line(_reckon(["serve", "--worker", url], env, tmp_path)), url
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = _one_line(_reckon(["serve", "--port", str(port)], env, tmp_path))
    assert line.startswith(f"error: setting --port: cannot bind 127.0.0.1:{port}") and "in use" in line
