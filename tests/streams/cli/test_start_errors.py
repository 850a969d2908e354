"""The common start failures end in one line naming the cause, with no secret in it."""

from __future__ import annotations

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
    for command in (["worker"], ["replay", "--events", "5"]):
        line = _one_line(_reckon(command, env, tmp_path))
        assert "cannot reach Kafka at RECKON_BOOTSTRAP_SERVERS" in line and "refused" in line


def test_malformed_json_setting(tmp_path: Path) -> None:
    line = _one_line(_reckon(["worker"], {"RECKON_DAILY_BUDGET_USD": "{acme: 5"}, tmp_path))
    assert line == "error: setting RECKON_DAILY_BUDGET_USD: is not valid JSON"


def test_unreachable_clickhouse_error_masks_the_password(tmp_path: Path) -> None:
    dsn = f"http://reckon:hunter2@127.0.0.1:{free_port()}/reckon"
    line = _one_line(_reckon(["migrate"], {"RECKON_CLICKHOUSE_DSN": dsn}, tmp_path))
    assert "ClickHouse" in line and "hunter2" not in line


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
