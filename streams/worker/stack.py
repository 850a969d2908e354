"""Start what a command needs: the embedded broker when no Kafka is configured, topics, a
demo model when the registry has none, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from reckon.streams.core.errors import BrokerError
from reckon.streams.core.settings import Settings
from reckon.streams.kafka.broker import EmbeddedBroker, _die_with_parent_term, create_topics, free_port
from reckon.streams.kafka.preflight import check_reachable
from reckon.streams.traffic.generator import TrafficGenerator


@contextmanager
def kafka(settings: Settings, log_path: Path | None = None) -> Iterator[str]:
    """Yield bootstrap servers: the configured Kafka, or an embedded broker for the block."""
    if not settings.embedded_kafka:
        check_reachable(settings.bootstrap_servers, settings.kafka_ssl_context(), sasl=settings.kafka_sasl())
        create_topics(settings.bootstrap_servers, settings.partitions, settings.replication_factor,
                      client_kwargs=settings.kafka_client_kwargs())
        yield settings.bootstrap_servers
        return
    with EmbeddedBroker(log_path=log_path) as broker:
        create_topics(broker.bootstrap_servers, settings.partitions)
        yield broker.bootstrap_servers


def demo_model(registry: Path, seconds: float = 20.0):
    """The promoted model, or one trained for `seconds` on 20,000 generated events."""
    from reckon.models.training.bootstrap import ensure_model

    gen = TrafficGenerator(seed=99)
    return ensure_model(registry, [e for e, _ in zip(gen.sessions(), range(20_000))], seconds=seconds)


class WorkerProcess:
    """`reckon worker` (or another command: `args`) as a child process (dies with its parent)."""

    def __init__(self, env: dict[str, str], log_path: Path, web_port: int, args: tuple[str, ...] = ("worker",)) -> None:
        self.web_port = web_port
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reckon.streams.cli.main", *args], env={**os.environ, **env},
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent_term)

    command_name = "worker"
    stats_path = "/stats"

    @staticmethod
    def ready(stats: dict) -> bool:
        return "started_at" in stats      # joined its group, partitions assigned

    def stats(self) -> dict | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.web_port}{self.stats_path}", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None

    def wait_ready(self, timeout_s: float = 120) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"{self.command_name} exited with code {self.proc.returncode}; log: {self.log_path}\n"
                                  + self.tail())
            stats = self.stats()
            if stats is not None and self.ready(stats):
                return stats
            time.sleep(0.3)
        raise BrokerError(f"{self.command_name} was not ready within {timeout_s:.0f}s; log: {self.log_path}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log.close()


def start_worker(bootstrap: str, registry: Path, data: Path, name: str, log_name: str | None = None,
                 **env: str) -> WorkerProcess:
    """A `reckon worker` child on `bootstrap` with its own data dir, chdb store and web port,
    started and answering. Extra RECKON_* settings go in `env`."""
    port = free_port()
    data.mkdir(parents=True, exist_ok=True)
    base = {"RECKON_BOOTSTRAP_SERVERS": bootstrap, "RECKON_DATA_DIR": str(data),
            "RECKON_MODEL_REGISTRY": str(registry), "RECKON_WEB_PORT": str(port),
            "RECKON_WORKER_NAME": name, "RECKON_CLICKHOUSE_DSN": f"chdb://{data / 'clickhouse'}"}
    worker = WorkerProcess({**base, **env}, data / f"{log_name or name}.log", port)
    worker.wait_ready()
    return worker


class ReplicaProcess(WorkerProcess):
    """`reckon serve` as a child process: a read replica of the recommendations topic."""

    command_name = "reckon serve"
    stats_path = "/healthz"          # 200 once caught up, 503 before

    @staticmethod
    def ready(stats: dict) -> bool:
        return bool(stats.get("caught_up"))


def start_replica(bootstrap: str, log_path: Path, worker_url: str | None = None, options: tuple[str, ...] = (),
                  **env: str) -> ReplicaProcess:
    """A `reckon serve` child on `bootstrap`, caught up and answering. More of its options in
    `options`, extra RECKON_* settings in `env`."""
    port = free_port()
    args = ("serve", "--port", str(port)) + (("--worker", worker_url) if worker_url else ()) + options
    replica = ReplicaProcess({"RECKON_BOOTSTRAP_SERVERS": bootstrap, **env}, log_path, port, args)
    replica.wait_ready(60)
    return replica
