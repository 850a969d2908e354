"""Kafka over TLS for real: a throwaway CA, a TLS-terminating proxy in front of the embedded
broker (which advertises the proxy, so clients learn no other address); replay, a worker,
its cost sink and a read replica work through it, and a wrong CA fails in one line."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from reckon.streams.core.settings import load_settings
from reckon.streams.kafka.broker import EmbeddedBroker, create_topics, free_port
from reckon.streams.worker.stack import start_replica, start_worker

from ..conftest import wait_for
from ..tls_proxy import TlsProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[str, TlsProxy, dict[str, str]]]:
    """(bootstrap, proxy, env for TLS clients); also writes a CA that signed nothing here."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "wrong-ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    proxy_port = free_port()
    env = {"RECKON_KAFKA_SECURITY_PROTOCOL": "SSL", "RECKON_KAFKA_SSL_CAFILE": str(tmp_path / "ca.pem"),
           "RECKON_BOOTSTRAP_SERVERS": f"127.0.0.1:{proxy_port}"}
    with EmbeddedBroker(log_path=tmp_path / "broker.log", advertised_port=proxy_port) as broker, \
            TlsProxy(proxy_port, broker.port, context) as proxy:
        settings = load_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "ca.pem"))
        create_topics(env["RECKON_BOOTSTRAP_SERVERS"], 4, client_kwargs=settings.kafka_client_kwargs())
        yield env["RECKON_BOOTSTRAP_SERVERS"], proxy, env


def _reckon(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECKON_")}
    return subprocess.run([sys.executable, "-m", "reckon.streams.cli.main", *args], env={**clean, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_replay_worker_and_sink_through_tls(tls_broker, registry_dir: Path, tmp_path: Path) -> None:
    bootstrap, proxy, env = tls_broker
    tls_env = {k: v for k, v in env.items() if k != "RECKON_BOOTSTRAP_SERVERS"}
    worker = start_worker(bootstrap, registry_dir, tmp_path / "w", "tls-1", RECKON_DEVICE="cpu", **tls_env)
    try:
        replay = _reckon(["replay", "--events", "400", "--seed", "7"], env, tmp_path)
        assert replay.returncode == 0, replay.stderr
        sent = json.loads(replay.stdout.strip().splitlines()[-1])["sent"]
        assert sent == 400
        stats = wait_for(lambda: (s := worker.stats()) and s.get("consumed", 0) >= sent and s, what="events consumed")
        assert stats["recommendations"] > 0 and stats["cost_events_sent"] > 0
        # the sink (same worker, its own consumer group) stored the cost events through TLS too
        wait_for(lambda: (worker.stats() or {}).get("cost_events_sunk", 0) >= stats["cost_events_sent"],
                 what="cost events in ClickHouse")
        # a read replica reads the published recommendations through TLS too
        replica = start_replica(bootstrap, tmp_path / "serve.log", **tls_env)
        try:
            assert replica.stats()["read"] >= stats["recommendations"]
        finally:
            assert replica.stop() == 0, replica.tail()
    finally:
        assert worker.stop() == 0, worker.tail()
    log = worker.log_path.read_text()
    assert "broker check failed" not in log, log     # the watchdog's kafka-python client got TLS too
    assert "reckon worker started" in log
    assert "\x1b[" not in log     # no spinner or colour escapes in a log file
    assert proxy.connections > 3   # admin, replay, Faust's consumer and producer, the sink: all via TLS


@pytest.mark.parametrize("command", [["replay", "--events", "10"], ["worker"], ["serve"]])
def test_a_wrong_ca_fails_in_one_line(tls_broker, tmp_path: Path, command: list[str]) -> None:
    _, _, env = tls_broker
    result = _reckon(command, {**env, "RECKON_KAFKA_SSL_CAFILE": str(tmp_path / "wrong-ca.pem"),
                               "RECKON_DATA_DIR": str(tmp_path / "data")}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "certificate not trusted" in lines[0] and "RECKON_KAFKA_SSL_CAFILE" in lines[0]
