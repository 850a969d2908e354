"""Reckon's settings: one frozen object built at the entry point from RECKON_* env vars / .env."""

from __future__ import annotations

import os
import socket
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reckon.streams.core.errors import SettingsError

ENV_PREFIX = "RECKON_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # Kafka: empty bootstrap servers means "start the embedded Tansu broker".
    bootstrap_servers: str = ""
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=16)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: str = ""

    # ClickHouse: chdb:///dir (embedded engine) or http(s)://user:pass@host:port/db.
    clickhouse_dsn: SecretStr = SecretStr("")
    data_dir: Path = Path(".reckon")

    model_registry: Path | None = None
    price_sheet: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    onnx_threads: int = Field(1, ge=0, le=256)  # intra-op threads on CPU; 0 = ONNX Runtime's default
    ab_version: str = ""                       # challenger model version for an A/B split
    ab_fraction: float = Field(0.0, ge=0, le=1)  # share of users (by hash) it scores

    # Worker.
    app_id: str = Field("reckon", pattern=r"^[A-Za-z0-9._-]+$")  # consumer group and changelog prefix
    worker_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    role: Literal["all", "scorer", "sink"] = "all"
    web_port: int = Field(6066, ge=1, le=65535)
    # One batch = one fetch: at most batch_size records, the broker holding the fetch at most
    # batch_wait_ms for more. Under backlog batches grow to batch_size; at low load they stay small.
    # Unset: 2000 for a worker that scores (latency), 8000 for one that never does (throughput).
    batch_size: int | None = Field(None, ge=1, le=65536)
    batch_wait_ms: int = Field(20, ge=1, le=60_000)
    # User states kept decoded in memory between batches (streams/kafka/user_store.py).
    state_cache_users: int = Field(50_000, ge=100, le=10_000_000)
    top_k: int = Field(10, ge=1, le=1000)
    candidates: int = Field(100, ge=1, le=10_000)
    trigger: Literal["all", "clicks", "searches", "none"] = "all"   # "none": ingest and state only
    trigger_min_interval_s: float = Field(0.0, ge=0)
    default_tenant: str = "default"
    user_ttl_s: float = Field(30 * 86400, gt=0)   # a user idle this long starts with fresh state

    # Cost sink.
    sink_batch_rows: int = Field(500, ge=1, le=1_000_000)
    sink_flush_ms: int = Field(500, ge=1, le=600_000)
    sink_group_id: str = "reckon-sink"           # the sink's own consumer group (it commits its offsets)
    sink_logs: bool = True                       # also store recommendations and clicks (attribution)

    # Cost accounting (streams/costs/idle.py, streams/costs/alert_engine.py).
    cost_interval_s: float = Field(10.0, gt=0, le=3600)     # idle/shared rows every N s (divide 60)
    reserved_vcpus: float = Field(1.0, ge=0)                # what one worker reserves, used or not
    reserved_ram_gb: float = Field(2.0, ge=0)
    reserved_gpus: float | None = Field(None, ge=0)         # None: 1 when the device is cuda, else 0
    attribution_window_s: int = Field(1800, ge=1, le=7 * 86400)
    alert_interval_s: float = Field(10.0, gt=0, le=3600)
    alert_window_minutes: int = Field(60, ge=3, le=10080)
    alert_warmup_minutes: int = Field(15, ge=3, le=10080)
    alert_z: float = Field(6.0, gt=0)
    alert_min_ratio: float = Field(2.0, ge=1)
    alert_min_recs: int = Field(20, ge=1)
    daily_budget_usd: dict[str, Decimal] = Field(default_factory=dict)  # tenant or "*" -> USD/day (JSON)
    burn_short_minutes: int = Field(5, ge=1, le=1440)
    burn_long_minutes: int = Field(60, ge=2, le=1440)
    burn_warning: float = Field(2.0, gt=0)
    burn_critical: float = Field(10.0, gt=0)
    alert_webhook_url: str = ""

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn_scheme(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if raw and not raw.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        return v

    @property
    def max_batch(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return 8000 if self.trigger == "none" else 2000

    @property
    def embedded_kafka(self) -> bool:
        return not self.bootstrap_servers

    @property
    def clickhouse_url(self) -> str:
        raw = self.clickhouse_dsn.get_secret_value()
        return raw or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def registry_dir(self) -> Path:
        return self.model_registry or self.data_dir / "models"

    def kafka_client_kwargs(self) -> dict[str, object]:
        """Security settings passed through to aiokafka / Faust clients."""
        out: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            out |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
        return out


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one that names the env var.

    Secrets may also come from files: with RECKON_SECRETS_DIR=/run/secrets, a file named
    `reckon_kafka_sasl_password` (or any other setting) holds that setting's value.
    """
    secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR", f"{secrets_dir} is not a directory")
    try:
        return Settings(**overrides, _secrets_dir=secrets_dir)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}", err["msg"]) from None
