"""Reckon's settings: one frozen object built at the entry point from RECKON_* env vars / .env."""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import socket
import ssl
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from reckon.streams.core.errors import SettingsError
from reckon.streams.core.ids import MAX_ID_CHARS, printable_id

ENV_PREFIX = "RECKON_"
SECRETS_DIR_HELP = ("a directory of files named like settings (`reckon_kafka_sasl_password`), each holding "
                    "that setting's value, e.g. `/run/secrets`")


class Settings(BaseSettings):
    """Every field is a RECKON_<NAME> variable; its description is README's settings table
    (`reckon settings --markdown` prints it; tests/streams/core/test_settings_doc.py keeps them equal)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # Kafka.
    bootstrap_servers: str = Field("", description="Kafka bootstrap servers, `host:port,...`; empty starts the "
                                   "embedded broker (memory only)")
    partitions: int = Field(4, ge=1, le=1024, description="partitions of the topics Reckon creates")
    replication_factor: int = Field(1, ge=1, le=16, description="replication factor of the topics Reckon creates")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`, for every Kafka client")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`")
    kafka_sasl_username: str = Field("", description="SASL user name")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (never printed)")
    kafka_ssl_cafile: str = Field("", description="PEM file of the CA(s) that signed the brokers' certificates; "
                                  "empty: the system's trust store")
    kafka_ssl_certfile: str = Field("", description="client certificate (PEM) for brokers that require mutual TLS")
    kafka_ssl_keyfile: str = Field("", description="the client certificate's private key (PEM)")
    kafka_ssl_key_password: SecretStr = Field(SecretStr(""), description="password of that key (never printed)")

    # ClickHouse and files.
    clickhouse_dsn: SecretStr = Field(SecretStr(""), description="`http(s)://user:pass@host:port/db` for a server "
                                      "(`https`: TLS on any port; `?ca_cert=/path/ca.pem` trusts a private CA), "
                                      "`chdb:///dir` for the embedded engine; empty: `chdb://<data dir>/clickhouse`")
    data_dir: Path = Field(Path(".reckon"), description="RocksDB state, the embedded ClickHouse store, logs "
                                                        "(relative: to the working directory)")
    model_registry: Path | None = Field(None, description="model registry directory; unset: `<data dir>/models`")
    price_sheet: Path | None = Field(None, description="effective-dated unit prices (TOML); unset: the shipped "
                                     "`streams/costs/prices.toml`; `RECKON_PRICE_<NAME>` overrides one price")

    # Model serving.
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`cpu`, `cuda`, or `auto` (CUDA when ONNX Runtime can use a GPU)")
    onnx_threads: int = Field(1, ge=0, le=256, description="ONNX Runtime intra-op threads on CPU; 0: its default")
    ab_version: str = Field("", description="challenger model version for an A/B split; empty: none")
    ab_fraction: float = Field(0.0, ge=0, le=1, description="share of users (by hash of the user id) the "
                               "challenger scores")

    # Worker.
    app_id: str = Field("reckon", pattern=r"^[A-Za-z0-9._-]+$",
                        description="Faust app id: consumer group and changelog topic prefix")
    worker_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
                             description="this worker in cost events and metrics; unset: `<hostname>-<pid>`")
    role: Literal["all", "scorer", "sink"] = Field(
        "all", description="`scorer` (events to recommendations), `sink` (Kafka to ClickHouse, alerts) or `all`")
    web_port: int = Field(6066, ge=1, le=65535, description="port of the worker's pages (/metrics, /stats, /costs, "
                          "/state, /recommendations, /events, /retrain)")
    web_bind: str = Field("127.0.0.1", min_length=1, description="address the web port binds; `0.0.0.0` in a "
                          "container so Prometheus and port mappings reach it")
    web_idle_timeout_s: float = Field(30.0, gt=0, le=3600, description="a web connection that has not sent a "
                                      "whole request this long after it opened (or after its last answer) is "
                                      "closed: idle and half-sent requests do not hold the port's sockets")
    web_max_connections: int = Field(256, ge=1, le=100_000, description="web connections held open at once; one "
                                     "past it is answered 503 and closed, so many clients cannot take the sockets "
                                     "and file descriptors the worker needs")
    web_token: SecretStr = Field(SecretStr(""), description="bearer token (16+ characters) for the pages with user "
                                 "or tenant data (/state, /costs, /recommendations, /events) and, over every tenant, "
                                 "for /retrain and /metrics; empty (and no tenant tokens): those pages are open to whoever reaches the "
                                 "web port")
    web_tenant_tokens: dict[str, SecretStr] = Field(default_factory=dict, description="JSON object: tenant -> "
                                                    "bearer token that reads only that tenant's /state, /costs and "
                                                    "/recommendations and posts only its /events")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`")
    log_format: Literal["text", "json"] = Field("text", description="`text`, or `json`: one JSON object per line")
    # One batch = one fetch: under backlog batches grow to batch_size; at low load they stay small.
    batch_size: int | None = Field(None, ge=1, le=65536, description="records per fetched batch at most; unset: "
                                   "2000 for a worker that scores (latency), 8000 with `RECKON_TRIGGER=none`")
    batch_wait_ms: int = Field(20, ge=1, le=60_000, description="ms the broker may hold a fetch for more records")
    commit_interval_s: float = Field(
        1.0, gt=0, le=60, description="seconds between offset commits, each writing the user states changed since the "
                                      "last (RocksDB + changelog); a crash re-reads at most this much traffic")
    state_cache_users: int = Field(50_000, ge=100, le=10_000_000,
                                   description="user states kept decoded in memory between batches")
    recommendation_cache_users: int = Field(
        100_000, ge=1, le=10_000_000,
        description="latest recommendations kept for `GET /recommendations/{user}`, per worker (the least recently "
                    "published users go first)")
    top_k: int = Field(10, ge=1, le=1000, description="items per recommendation")
    candidates: int = Field(100, ge=1, le=10_000, description="candidates scored per user")
    trigger: Literal["all", "clicks", "searches", "none"] = Field(
        "all", description="events that trigger a recommendation: `all`, `clicks` or `searches`; `none`: ingest "
                           "and state only")
    trigger_min_interval_s: float = Field(0.0, ge=0, description="seconds between two recommendations for one "
                                          "user at least; 0: every triggering event")
    default_tenant: str = Field("default", description="tenant of events that name none")
    tenants: Annotated[tuple[str, ...], NoDecode] = Field((), description="tenants served, comma-separated: other "
                                                          "tenants' events are dead-lettered (`unknown_tenant`); "
                                                          "empty: every tenant")
    user_ttl_s: float = Field(30 * 86400, gt=0, description="a user idle this many seconds starts with fresh state")
    # Cold start (streams/pipeline/coldstart.py).
    cold_start: bool = Field(True, description="estimate vectors for items the served version never saw, from "
                             "their co-visitation with known items, so they are ranked before the next retrain")
    cold_start_min_weight: float = Field(1.0, gt=0, description="co-visitation weight with known items an item "
                                         "needs first (a click after it weighs 1.0, one before it 0.5)")
    cold_start_max_items: int = Field(100_000, ge=0, le=10_000_000,
                                      description="estimated items per loaded version at most")

    # Continuous training (streams/retrain): `reckon retrain`, and retrains in the worker that
    # holds the ClickHouse store. A candidate is promoted only when its retrain_metric on the
    # latest slice beats the current version's by retrain_margin.
    retrain_interval_s: float = Field(0.0, ge=0, description="the worker that holds the ClickHouse store retrains "
                                      "this often, seconds; 0: only when asked (`reckon retrain`, `POST /retrain`)")
    retrain_window_hours: float = Field(24.0, gt=0, le=24 * 90, description="hours of stored clicks a retrain "
                                        "reads, ending now")
    retrain_max_clicks: int = Field(2_000_000, ge=100, description="clicks a retrain reads at most (the latest)")
    retrain_eval_fraction: float = Field(0.2, gt=0, lt=0.5, description="share of the clicks in the latest slice, "
                                         "the one the candidate and the current version are judged on")
    retrain_valid_fraction: float = Field(0.1, gt=0, lt=0.5, description="share of the clicks in the slice before "
                                          "it, the one the candidate's epochs are chosen on")
    retrain_metric: Literal["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20"] = Field(
        "hr@10", description="the metric a promotion is decided on (full ranking; an unknown item is a miss)")
    retrain_margin: float = Field(0.01, ge=0, le=1, description="promote only when the candidate beats the current "
                                  "version by this much (absolute, in the metric)")
    retrain_min_examples: int = Field(200, ge=1, description="examples the latest slice needs for a decision")
    retrain_seconds: float = Field(120.0, ge=0.1, description="training wall-time budget, seconds")
    retrain_epochs: int = Field(10, ge=1, le=1000, description="training epochs at most (early stopping on the "
                                "validation slice)")
    retrain_lr: float = Field(1e-3, gt=0, le=1, description="fine-tuning learning rate")
    # 1 leaves the other cores to scoring; on a busy 2-core machine two threads trained several
    # times slower than one (OpenMP spin-waits).
    retrain_threads: int = Field(1, ge=0, le=256, description="torch threads a retrain trains on; 0: torch's "
                                 "default (every core)")
    retrain_device: Literal["cpu", "cuda"] = Field("cpu", description="torch device a retrain trains on")

    # Cost sink.
    # Inserts of 500 rows kept up with a tenth of the full path's log rows, 20,000 with all of
    # them (bench/cost_sink.py); at low load sink_flush_ms flushes first.
    sink_batch_rows: int = Field(20_000, ge=1, le=1_000_000, description="rows buffered before an insert at most")
    sink_flush_ms: int = Field(500, ge=1, le=600_000, description="ms a buffered row waits for its insert at most")
    sink_group_id: str = Field("reckon-sink", pattern=r"^[A-Za-z0-9._-]+$", description="the sink's own consumer group (it commits its offsets)")
    sink_logs: bool = Field(True, description="also store recommendations and clicks (for click attribution)")

    # Cost accounting (streams/costs/idle.py, streams/costs/alert_engine.py).
    cost_interval_s: float = Field(10.0, gt=0, le=3600, description="seconds per idle/shared cost row: divides 60, or a "
                                   "multiple of 60 that divides 3600 (a row never straddles a minute or an hour)")
    reserved_vcpus: float = Field(1.0, ge=0, description="vCPUs one worker reserves, used or not (idle cost)")
    reserved_ram_gb: float = Field(2.0, ge=0, description="GB of RAM one worker reserves")
    reserved_gpus: float | None = Field(None, ge=0, description="GPUs one worker reserves; unset: 1 on `cuda`, "
                                        "else 0")
    attribution_window_s: int = Field(1800, ge=1, le=7 * 86400, description="click attribution window, seconds: "
                                      "what `reckon costs` and GET /costs use unless asked for another")
    alert_interval_s: float = Field(10.0, gt=0, le=3600, description="seconds between alert evaluations (sink role)")
    alert_window_minutes: int = Field(60, ge=3, le=10080, description="trailing minutes the anomaly detector "
                                      "compares against")
    alert_warmup_minutes: int = Field(15, ge=3, le=10080, description="minutes of history before any anomaly verdict")
    alert_z: float = Field(6.0, gt=0, description="robust z-score (median/MAD) that flags an anomaly")
    alert_min_ratio: float = Field(2.0, ge=1, description="an anomaly is also at least this multiple of the median")
    alert_min_recs: int = Field(20, ge=1, description="recommendations a minute needs to count in cost per 1k")
    daily_budget_usd: dict[str, Decimal] = Field(default_factory=dict, description="JSON object: tenant (or `*`) "
                                                 "-> USD per day, e.g. `{\"acme\": 50}`; budget alerts use it")
    burn_short_minutes: int = Field(5, ge=1, le=1440, description="short burn-rate window, minutes")
    burn_long_minutes: int = Field(60, ge=2, le=1440, description="long burn-rate window, minutes")
    burn_warning: float = Field(2.0, gt=0, description="burn rate (1 = the daily budget in a day) for a warning")
    burn_critical: float = Field(10.0, gt=0, description="burn rate for a critical alert")
    alert_webhook_url: SecretStr = Field(SecretStr(""), description="alerts are also POSTed here as JSON; empty: "
                                         "none (a secret: chat webhooks carry their token in the path)")

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn_scheme(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if raw and not raw.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        if raw.startswith("chdb://") and not raw.removeprefix("chdb://").strip():
            raise ValueError("chdb:// needs the store's directory, e.g. chdb:///var/lib/reckon/clickhouse")
        if raw.startswith(("http://", "https://")):
            check_http_url(raw, "https://host:8443/database")
        return v

    @field_validator("cost_interval_s")
    @classmethod
    def _aligned_interval(cls, v: float) -> float:
        per_minute, per_hour = 60 / v, 3600 / v
        if not (math.isclose(per_minute, round(per_minute)) or (v % 60 == 0 and per_hour.is_integer())):
            raise ValueError("must divide 60 (e.g. 5, 10, 15, 30) or be a multiple of 60 that divides 3600 "
                             "(e.g. 300): rows are aligned to the clock and must not straddle a minute")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        # Settings that contradict each other: named here (pydantic reports no field for them).
        tls_files = [name for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")
                     if getattr(self, name)]
        if tls_files and not self.kafka_tls:
            # Else the clients would talk plaintext while the operator believes they use TLS.
            raise SettingsError(f"{ENV_PREFIX}{tls_files[0].upper()}", "is set, but RECKON_KAFKA_SECURITY_PROTOCOL "
                                f"is {self.kafka_security_protocol}, which ignores it: set SSL or SASL_SSL, or unset it")
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_username:
            raise SettingsError("RECKON_KAFKA_SASL_USERNAME", f"is empty, but RECKON_KAFKA_SECURITY_PROTOCOL is "
                                f"{self.kafka_security_protocol}: the broker needs a user name")
        if self.candidates < self.top_k:
            raise SettingsError("RECKON_CANDIDATES", "must be at least RECKON_TOP_K: a recommendation is the top "
                                f"{self.top_k} of the candidates scored, and only {self.candidates} would be")
        if self.burn_warning >= self.burn_critical:
            raise SettingsError("RECKON_BURN_WARNING", "must be below RECKON_BURN_CRITICAL "
                                f"({self.burn_warning:g} >= {self.burn_critical:g})")
        if self.burn_short_minutes >= self.burn_long_minutes:
            raise SettingsError("RECKON_BURN_SHORT_MINUTES", "must be below RECKON_BURN_LONG_MINUTES "
                                f"({self.burn_short_minutes} >= {self.burn_long_minutes})")
        negative = sorted(t for t, usd in self.daily_budget_usd.items() if not 0 < usd < math.inf)
        if negative:
            raise SettingsError("RECKON_DAILY_BUDGET_USD", f"the budget of {negative[0]!r} must be a positive amount")
        for name, value in self:      # 1e400 reads as inf: an infinite reservation, TTL or threshold
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingsError(f"{ENV_PREFIX}{name.upper()}", "must be a finite number")
        owners: dict[str, str] = {}
        tokens = [("every tenant", self.web_token)] + sorted(self.web_tenant_tokens.items())
        for owner, token in tokens:
            if token.get_secret_value():
                other = owners.setdefault(token.get_secret_value(), owner)
                if other != owner:      # the token would read as whichever scope matched first
                    raise SettingsError("RECKON_WEB_TENANT_TOKENS", f"{other!r} and {owner!r} have the same token")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, v: SecretStr) -> SecretStr:
        url = v.get_secret_value()
        if url:
            if not url.startswith(("http://", "https://")):
                raise ValueError("must start with http:// or https://")
            check_http_url(url, "https://hooks.example.com/reckon")
        return v

    @field_validator("tenants", mode="before")
    @classmethod
    def _tenant_list(cls, v: object) -> object:
        if not isinstance(v, str):
            return v
        if v.lstrip().startswith("["):      # a JSON list, as other list settings take: not ids with brackets
            try:
                listed = json.loads(v)
            except ValueError:
                listed = None
            if not (isinstance(listed, list) and all(isinstance(t, str) for t in listed)):
                raise ValueError("must be comma-separated tenant ids, or a JSON list of strings")
            v = ",".join(listed)
        tenants = tuple(t.strip() for t in v.split(",") if t.strip())
        if v.strip() and not tenants:      # "," would otherwise read as "every tenant"
            raise ValueError(f"{v[:40]!r} names no tenant; leave it empty to accept every tenant")
        return tenants

    @field_validator("tenants", "default_tenant")
    @classmethod
    def _tenant_ids(cls, v: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for tenant in (v,) if isinstance(v, str) else v:
            if not printable_id(tenant):
                raise ValueError(f"tenant {tenant[:40]!r} must be 1..{MAX_ID_CHARS} printable characters")
        return v

    @field_validator("worker_name")
    @classmethod
    def _printable_name(cls, v: str) -> str:
        # it labels metrics, cost rows and log lines: a control character would garble all three
        if not printable_id(v):
            raise ValueError(f"must be 1..{MAX_ID_CHARS} printable characters")
        return v

    @field_validator("web_token")
    @classmethod
    def _token_strength(cls, v: SecretStr) -> SecretStr:
        if v.get_secret_value() and len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (or empty: pages open)")
        _no_padding(v.get_secret_value(), "the token")
        return v

    @field_validator("web_tenant_tokens")
    @classmethod
    def _tenant_token_strength(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for tenant, token in v.items():
            if not tenant:
                raise ValueError("a tenant's name is empty")
            if len(token.get_secret_value()) < 16:
                raise ValueError(f"the token of tenant {tenant[:40]!r} must be at least 16 characters")
            _no_padding(token.get_secret_value(), f"the token of tenant {tenant[:40]!r}")
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

    @property
    def kafka_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The one TLS context every Kafka client gets (Faust, aiokafka, kafka-python)."""
        if not self.kafka_tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.kafka_ssl_cafile or None)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"{ENV_PREFIX}KAFKA_SSL_CAFILE", f"cannot load {self.kafka_ssl_cafile}: {exc}") from None
        if self.kafka_ssl_certfile:
            try:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile or None,
                                        self.kafka_ssl_key_password.get_secret_value() or None)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"{ENV_PREFIX}KAFKA_SSL_CERTFILE",
                                    f"cannot load {self.kafka_ssl_certfile}: {exc}") from None
        return context

    def kafka_sasl(self) -> tuple[str, str, str] | None:
        """(mechanism, user name, password) when the protocol is SASL_*, for the preflight check."""
        if not self.kafka_security_protocol.startswith("SASL"):
            return None
        return self.kafka_sasl_mechanism, self.kafka_sasl_username, self.kafka_sasl_password.get_secret_value()

    def kafka_client_kwargs(self) -> dict[str, object]:
        """Security settings for aiokafka and kafka-python clients (both take `ssl_context`)."""
        out: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_tls:
            out["ssl_context"] = self.kafka_ssl_context()
        if self.kafka_security_protocol.startswith("SASL"):
            out |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
        return out


def _no_padding(token: str, what: str) -> None:
    # A presented token is read without surrounding whitespace: a padded one could never match.
    if token != token.strip():
        raise ValueError(f"{what} starts or ends with whitespace, which no request can present")


def check_http_url(url: str, example: str) -> None:
    """A URL clients can connect to: a host, and a port that is a number (the value itself is
    left out of the message: it may hold a password)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"needs a host, e.g. {example}")
    try:
        parts.port
    except ValueError:
        raise ValueError("its port must be a number from 0 to 65535") from None


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one that names the env var.

    Secrets may also come from files: with RECKON_SECRETS_DIR=/run/secrets, a file named
    `reckon_kafka_sasl_password` (or any other setting) holds that setting's value.
    """
    secrets_dir = os.environ.get(f"{ENV_PREFIX}SECRETS_DIR")
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise SettingsError(f"{ENV_PREFIX}SECRETS_DIR", f"{secrets_dir} is not a directory")
    try:
        settings = Settings(**overrides, _secrets_dir=secrets_dir)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}", err["msg"].removeprefix("Value error, ")) from None
    except SourceError as exc:   # a structured setting (a dict) whose value is not JSON
        field = _FIELD_IN_SOURCE_ERROR.search(str(exc))
        name = f"{ENV_PREFIX}{field.group(1).upper()}" if field else "RECKON_*"
        raise SettingsError(name, "is not valid JSON") from None
    except UnicodeDecodeError as exc:   # the .env file (or a secrets file) is not UTF-8 text
        raise SettingsError(f"{ENV_PREFIX}* (.env or {ENV_PREFIX}SECRETS_DIR)",
                            f"a settings file is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    _check_names(os.environ, "")
    if Path(".env").is_file():
        _check_names(dotenv_values(".env"), " (in .env)")
    return settings


# RECKON_* names that are not settings: read before settings exist, the image's build argument,
# and the price overrides (streams/costs/pricing.py checks those against the sheet)
_NOT_SETTINGS = (f"{ENV_PREFIX}SECRETS_DIR", f"{ENV_PREFIX}EXTRAS", f"{ENV_PREFIX}PRICE_")


def _check_names(names: Iterable[str], where: str) -> None:
    """A misspelt setting is refused, not ignored: RECKON_WEB_TOKN would leave the pages open."""
    known = [f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields]
    for name in sorted(names):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known or upper.startswith(_NOT_SETTINGS):
            continue
        typed, fields = upper.removeprefix(ENV_PREFIX), [k.removeprefix(ENV_PREFIX) for k in known]
        close = difflib.get_close_matches(typed, fields, n=1, cutoff=0.7) or [f for f in fields if typed and typed in f][:1]
        hint = f"did you mean {ENV_PREFIX}{close[0]}?" if close else "`reckon settings` lists them"
        raise SettingsError(name[:80], f"is not a Reckon setting{where}; {hint}")


_FIELD_IN_SOURCE_ERROR = re.compile(r'field "([a-z0-9_]+)"')
