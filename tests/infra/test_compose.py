"""docker-compose.yml cannot run here (no Docker engine): check it agrees with the code."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import yaml

from reckon.streams.core.settings import ENV_PREFIX, Settings

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (COMPOSE["services"][service].get("environment") or {}).items()}


def test_services_present() -> None:
    assert {"kafka", "clickhouse", "migrate", "worker", "grafana"} <= set(COMPOSE["services"])


def test_reckon_variables_are_real_settings() -> None:
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for service in ("worker", "migrate"):
        names = {k for k in _env(service) if k.startswith(ENV_PREFIX)}
        assert names and names <= fields, names - fields


def test_worker_settings_validate_and_point_at_the_services() -> None:
    env = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in _env("worker").items()}
    env["clickhouse_dsn"] = env["clickhouse_dsn"].replace("${CLICKHOUSE_PASSWORD:-reckon}", "pw")
    settings = Settings(**env)
    host, port = settings.bootstrap_servers.split(":")
    assert host == "kafka" and port in str(COMPOSE["services"]["kafka"]["ports"])
    dsn = urlparse(settings.clickhouse_url)
    assert dsn.hostname == "clickhouse" and f"{dsn.port}:{dsn.port}" in COMPOSE["services"]["clickhouse"]["ports"]
    assert f"{settings.web_port}:{settings.web_port}" in COMPOSE["services"]["worker"]["ports"]
    assert settings.partitions == int(_env("kafka")["KAFKA_NUM_PARTITIONS"])


def test_grafana_mounts_exist() -> None:
    root = Path(__file__).resolve().parents[2]
    for volume in COMPOSE["services"]["grafana"]["volumes"]:
        source = volume.split(":")[0]
        assert (root / source).exists(), f"{source} is mounted but missing"


def test_no_secret_literals() -> None:
    text = (Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text()
    assert "hunter" not in text and "PASSWORD: reckon" not in text
