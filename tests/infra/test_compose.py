"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): lint them with
the ecosystem's own tools (the compose-spec schema via check-jsonschema, hadolint) and check
they agree with the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

from reckon.streams.core.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS = yaml.safe_load((ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
BIN = Path(sys.executable).parent


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (COMPOSE["services"][service].get("environment") or {}).items()}


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                             str(ROOT / "docker-compose.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([str(BIN / "hadolint"), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_present() -> None:
    assert {"kafka", "clickhouse", "migrate", "model", "worker", "serve", "prometheus", "grafana"} <= set(COMPOSE["services"])


def test_every_service_restarts_and_says_how_it_is_healthy() -> None:
    for name, service in COMPOSE["services"].items():
        assert service.get("restart") in ("unless-stopped", "on-failure", "always"), name
        check = service.get("healthcheck") or {}
        assert check.get("test") or check.get("disable"), f"{name} has no healthcheck"
        if check.get("disable"):   # one-shot jobs: dependants wait for their exit code instead
            assert service["restart"] == "on-failure", name
            waits = [s for s in COMPOSE["services"].values() if isinstance(s.get("depends_on"), dict)
                     and s["depends_on"].get(name, {}).get("condition") == "service_completed_successfully"]
            assert waits, f"nothing waits for the one-shot {name}"


def test_images_and_plugins_are_pinned() -> None:
    for name, service in COMPOSE["services"].items():
        if "image" in service:
            assert re.search(r":[\w.-]*\d", service["image"]) and not service["image"].endswith(":latest"), name
    plugin = _env("grafana")["GF_INSTALL_PLUGINS"]
    assert re.fullmatch(r"grafana-clickhouse-datasource \d+\.\d+\.\d+", plugin), plugin


def test_reckon_variables_are_real_settings() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for service in ("worker", "migrate", "model", "serve"):
        names = {k for k in _env(service) if k.startswith(ENV_PREFIX)}
        assert names and names <= fields, names - fields


def test_worker_settings_validate_and_point_at_the_services() -> None:
    env = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in _env("worker").items()}
    env["clickhouse_dsn"] = env["clickhouse_dsn"].replace("${CLICKHOUSE_PASSWORD:-reckon}", "pw")
    settings = Settings(**env)
    kafka = _env("kafka")
    assert f"INTERNAL://{settings.bootstrap_servers}" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert settings.partitions == int(kafka["KAFKA_NUM_PARTITIONS"])
    dsn = urlparse(settings.clickhouse_url)
    assert dsn.hostname == "clickhouse" and f"{dsn.port}:{dsn.port}" in COMPOSE["services"]["clickhouse"]["ports"]
    assert settings.web_bind == "0.0.0.0"          # reachable from the port mapping and Prometheus
    # the container port alone: each replica of `--scale worker=N` gets a host port of its own
    assert COMPOSE["services"]["worker"]["ports"] == [str(settings.web_port)]
    assert "models:/models" in COMPOSE["services"]["worker"]["volumes"]
    assert str(settings.registry_dir) == "/models" and "models:/models" in COMPOSE["services"]["model"]["volumes"]


def test_the_replica_answers_where_its_healthcheck_asks_and_forwards_to_the_workers() -> None:
    from typer.testing import CliRunner

    from reckon.streams.cli.main import app

    service = COMPOSE["services"]["serve"]
    command = service["command"]
    assert command[:2] == ["reckon", "serve"]
    options = dict(zip(command[2::2], command[3::2]))
    assert service["ports"] == [options["--port"]] and options["--bind"] == "0.0.0.0"
    assert f"http://127.0.0.1:{options['--port']}/healthz" in " ".join(service["healthcheck"]["test"])
    worker = urlparse(options["--worker"])
    assert worker.hostname == "worker" and worker.port == int(_env("worker")["RECKON_WEB_PORT"])
    assert _env("serve")["RECKON_BOOTSTRAP_SERVERS"] == _env("worker")["RECKON_BOOTSTRAP_SERVERS"]
    help_text = CliRunner().invoke(app, ["serve", "--help"]).output
    assert all(option in help_text for option in options), help_text


def test_kafka_has_a_host_listener_and_keeps_its_data() -> None:
    kafka = _env("kafka")
    advertised = dict(a.split("://") for a in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    host_port = advertised["HOST"].split(":")[1]
    assert advertised["HOST"].startswith("localhost:") and f"{host_port}:{host_port}" in COMPOSE["services"]["kafka"]["ports"]
    assert any(v.endswith(f":{kafka['KAFKA_LOG_DIRS']}") for v in COMPOSE["services"]["kafka"]["volumes"])


def test_prometheus_scrapes_the_workers() -> None:
    (job,) = [j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "reckon-worker"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == int(_env("worker")["RECKON_WEB_PORT"])
    (replicas,) = [j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "reckon-serve"]
    (sd,) = replicas["dns_sd_configs"]
    assert sd["names"] == ["serve"] and [str(sd["port"])] == COMPOSE["services"]["serve"]["ports"]
    mounts = dict(v.split(":")[:2] for v in COMPOSE["services"]["prometheus"]["volumes"] if v.startswith("./"))
    assert mounts["./infra/prometheus"] == "/etc/prometheus"
    for rule_file in PROMETHEUS["rule_files"]:
        assert rule_file.startswith("/etc/prometheus/")
        assert (ROOT / "infra" / "prometheus" / rule_file.removeprefix("/etc/prometheus/")).exists()


def test_grafana_has_both_datasources_and_its_mounts_exist() -> None:
    for volume in COMPOSE["services"]["grafana"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"{source} is mounted but missing"
    sources = ROOT / "infra" / "grafana" / "provisioning" / "datasources"
    types = {d["type"] for f in sources.glob("*.yaml") for d in yaml.safe_load(f.read_text())["datasources"]}
    assert types == {"grafana-clickhouse-datasource", "prometheus"}
    (prom,) = yaml.safe_load((sources / "prometheus.yaml").read_text())["datasources"]
    assert urlparse(prom["url"]).hostname == "prometheus"


def test_the_image_installs_the_wheel_with_serving_extras_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    serving = dockerfile[dockerfile.index("AS serving"):]
    assert "ARG RECKON_EXTRAS=cpu" in serving and "reckon[${RECKON_EXTRAS}] @ file://" in serving
    assert "RECKON_WEB_BIND=0.0.0.0" in serving
    assert not any("train" in line for line in serving.splitlines() if line.lstrip().startswith(("RUN", "&&")))


def test_no_secret_literals() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "hunter" not in text and "PASSWORD: reckon" not in text
