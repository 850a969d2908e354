from __future__ import annotations

import pytest

from reckon.streams.core.errors import SettingsError
from reckon.streams.core.settings import load_settings


def test_defaults_use_the_embedded_stack(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.embedded_kafka
    assert s.clickhouse_url == f"chdb://{(tmp_path / '.reckon' / 'clickhouse').resolve()}"


@pytest.mark.parametrize(("env", "value", "needle"), [
    ("RECKON_PARTITIONS", "zero", "RECKON_PARTITIONS"),
    ("RECKON_PARTITIONS", "0", "RECKON_PARTITIONS"),
    ("RECKON_CLICKHOUSE_DSN", "mysql://x", "RECKON_CLICKHOUSE_DSN"),
    ("RECKON_DEVICE", "tpu", "RECKON_DEVICE"),
    ("RECKON_AB_FRACTION", "1.5", "RECKON_AB_FRACTION"),
])
def test_bad_settings_name_the_variable(monkeypatch, env: str, value: str, needle: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert needle in str(err.value)


def _refusal(monkeypatch, env: dict[str, str]) -> str:
    """The one-line SettingsError that loading settings under `env` raises."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    return str(err.value)


@pytest.mark.parametrize(("env", "says"), [
    ({"RECKON_COST_INTERVAL_S": "7"}, "setting RECKON_COST_INTERVAL_S: must divide 60"),
    ({"RECKON_COST_INTERVAL_S": "420"}, "setting RECKON_COST_INTERVAL_S: must divide 60"),
    ({"RECKON_CANDIDATES": "5"}, "setting RECKON_CANDIDATES: must be at least RECKON_TOP_K"),
    ({"RECKON_TOP_K": "50", "RECKON_CANDIDATES": "40"}, "setting RECKON_CANDIDATES: must be at least RECKON_TOP_K"),
    ({"RECKON_BURN_WARNING": "20"}, "setting RECKON_BURN_WARNING: must be below RECKON_BURN_CRITICAL (20 >= 10)"),
    ({"RECKON_BURN_SHORT_MINUTES": "90"}, "setting RECKON_BURN_SHORT_MINUTES: must be below RECKON_BURN_LONG_MINUTES"),
    ({"RECKON_DAILY_BUDGET_USD": '{"acme": -5}'}, "setting RECKON_DAILY_BUDGET_USD: the budget of 'acme' must be a "
                                                  "positive amount"),
    ({"RECKON_CLICKHOUSE_DSN": "chdb://"}, "setting RECKON_CLICKHOUSE_DSN: chdb:// needs the store's directory"),
    ({"RECKON_ALERT_WEBHOOK_URL": "notaurl"}, "setting RECKON_ALERT_WEBHOOK_URL: must start with http:// or https://"),
    ({"RECKON_KAFKA_SSL_CAFILE": "/etc/ssl/ca.pem"}, "setting RECKON_KAFKA_SSL_CAFILE: is set, but "
                                                     "RECKON_KAFKA_SECURITY_PROTOCOL is PLAINTEXT, which ignores it"),
])
def test_settings_that_cannot_work_together_or_at_all(monkeypatch, env: dict[str, str], says: str) -> None:
    assert _refusal(monkeypatch, env).startswith(says)


def test_intervals_aligned_to_the_clock_are_accepted(monkeypatch) -> None:
    for value in ("0.5", "1", "15", "60", "300", "3600"):
        monkeypatch.setenv("RECKON_COST_INTERVAL_S", value)
        assert load_settings().cost_interval_s == float(value)


def test_secrets_are_not_printed(monkeypatch) -> None:
    monkeypatch.setenv("RECKON_CLICKHOUSE_DSN", "http://u:hunter2@localhost:8123/db")
    monkeypatch.setenv("RECKON_KAFKA_SASL_PASSWORD", "hunter3")
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter3" not in repr(s)
    assert s.clickhouse_url.endswith("@localhost:8123/db")


def test_secrets_from_files(monkeypatch, tmp_path) -> None:
    (tmp_path / "reckon_kafka_sasl_password").write_text("from-a-file")
    monkeypatch.setenv("RECKON_SECRETS_DIR", str(tmp_path))
    s = load_settings()
    assert s.kafka_sasl_password.get_secret_value() == "from-a-file"
    monkeypatch.setenv("RECKON_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="RECKON_SECRETS_DIR"):
        load_settings()


def test_sasl_settings_reach_the_kafka_clients(monkeypatch) -> None:
    from reckon.streams.worker.app import faust_broker_kwargs

    monkeypatch.setenv("RECKON_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("RECKON_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("RECKON_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("RECKON_KAFKA_SASL_PASSWORD", "pw")
    s = load_settings()
    assert s.kafka_client_kwargs() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                                       "sasl_plain_username": "svc", "sasl_plain_password": "pw"}
    creds = faust_broker_kwargs(s, "k:9092")["broker_credentials"]
    assert creds.username == "svc" and creds.mechanism.value == "SCRAM-SHA-256"


def test_batch_size_defaults_by_role_and_an_explicit_one_wins(monkeypatch) -> None:
    monkeypatch.delenv("RECKON_BATCH_SIZE", raising=False)
    assert load_settings().max_batch == 2000                       # scores: latency first
    assert load_settings(trigger="none").max_batch == 8000         # never scores: throughput
    assert load_settings(trigger="none", batch_size=500).max_batch == 500
    monkeypatch.setenv("RECKON_BATCH_SIZE", "0")
    with pytest.raises(SettingsError, match="RECKON_BATCH_SIZE"):
        load_settings()


def test_one_tls_context_for_every_kafka_client(monkeypatch, tmp_path) -> None:
    import ssl

    import trustme

    from reckon.streams.worker.app import faust_broker_kwargs

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("RECKON_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RECKON_KAFKA_SSL_CAFILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("RECKON_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("RECKON_KAFKA_SASL_PASSWORD", "pw")
    s = load_settings()
    kwargs = s.kafka_client_kwargs()      # aiokafka and kafka-python both take ssl_context
    context = kwargs.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"] == context.get_ca_certs()[0]["issuer"]   # the CA we gave it
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
                      "sasl_plain_username": "svc", "sasl_plain_password": "pw"}
    creds = faust_broker_kwargs(s, "k:9093")["broker_credentials"]
    assert creds.ssl_context is not None and creds.username == "svc"
    # a CA file under a protocol without TLS would be ignored: the clients would talk plaintext
    with pytest.raises(SettingsError, match=r"^setting RECKON_KAFKA_SSL_CAFILE: is set, but "
                                            r"RECKON_KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT, which ignores it"):
        load_settings(kafka_security_protocol="SASL_PLAINTEXT")


def test_an_unreadable_ca_file_names_the_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RECKON_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("RECKON_KAFKA_SSL_CAFILE", str(tmp_path / "missing.pem"))
    with pytest.raises(SettingsError, match="RECKON_KAFKA_SSL_CAFILE"):
        load_settings().kafka_client_kwargs()


def test_malformed_json_in_a_setting_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("RECKON_DAILY_BUDGET_USD", "{acme: 5")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == "setting RECKON_DAILY_BUDGET_USD: is not valid JSON"


def test_the_web_port_binds_loopback_unless_told(monkeypatch) -> None:
    assert load_settings().web_bind == "127.0.0.1"
    monkeypatch.setenv("RECKON_WEB_BIND", "0.0.0.0")
    assert load_settings().web_bind == "0.0.0.0"


@pytest.mark.parametrize(("env", "says"), [
    ("RECKON_WEB_TOKN", "setting RECKON_WEB_TOKN: is not a Reckon setting; did you mean RECKON_WEB_TOKEN?"),
    ("RECKON_BOOTSTRAP", "setting RECKON_BOOTSTRAP: is not a Reckon setting; did you mean RECKON_BOOTSTRAP_SERVERS?"),
    ("RECKON_ZZZ", "setting RECKON_ZZZ: is not a Reckon setting; `reckon settings` lists them"),
])
def test_a_misspelt_setting_is_refused_not_ignored(monkeypatch, tmp_path, env: str, says: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(env, "a-token-of-sixteen-chars")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == says


def test_names_that_are_not_settings_but_are_reckons_pass(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("reckon_partitions", "3")           # names are case-insensitive
    monkeypatch.setenv("RECKON_EXTRAS", "gpu")               # the image's build argument
    monkeypatch.setenv("RECKON_PRICE_VCPU_HOUR", "0.05")      # checked against the price sheet
    monkeypatch.setenv("RECKON_SECRETS_DIR", str(tmp_path))
    assert load_settings().partitions == 3


def test_a_misspelt_setting_in_dotenv_is_refused_and_other_names_there_are_not_ours(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PATH_OF_SOMETHING_ELSE=1\nRECKON_PARTITIONS=2\n")
    assert load_settings().partitions == 2
    (tmp_path / ".env").write_text("RECKON_PARTITIONS=2\nRECKON_PARTITION=3\n")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == ("setting RECKON_PARTITION: is not a Reckon setting (in .env); "
                              "did you mean RECKON_PARTITIONS?")


def test_a_tenant_list_of_only_commas_is_refused_not_read_as_every_tenant(monkeypatch) -> None:
    monkeypatch.setenv("RECKON_TENANTS", " , ")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == "setting RECKON_TENANTS: ' , ' names no tenant; leave it empty to accept every tenant"
    monkeypatch.setenv("RECKON_TENANTS", "acme,,globex,")
    assert load_settings().tenants == ("acme", "globex")
    monkeypatch.setenv("RECKON_TENANTS", "")
    assert load_settings().tenants == ()
    # a JSON list, as list settings elsewhere take: it read as tenants '["acme"' and '"globex"]'
    monkeypatch.setenv("RECKON_TENANTS", '["acme", "globex"]')
    assert load_settings().tenants == ("acme", "globex")
    for bad in ('["acme",', "[1]"):
        assert _refusal(monkeypatch, {"RECKON_TENANTS": bad}) == (
            "setting RECKON_TENANTS: must be comma-separated tenant ids, or a JSON list of strings")


@pytest.mark.parametrize(("env", "says"), [
    ({"RECKON_WEB_TOKEN": " " * 20}, "setting RECKON_WEB_TOKEN: the token starts or ends with whitespace"),
    ({"RECKON_WEB_TENANT_TOKENS": '{"acme": "acme-token-0123456789 "}'},
     "setting RECKON_WEB_TENANT_TOKENS: the token of tenant 'acme' starts or ends with whitespace"),
    ({"RECKON_WEB_TENANT_TOKENS": '{"": "some-token-0123456789"}'},
     "setting RECKON_WEB_TENANT_TOKENS: a tenant's name is empty"),
    ({"RECKON_WEB_TENANT_TOKENS": '{"acme": "same-token-0123456789", "globex": "same-token-0123456789"}'},
     "setting RECKON_WEB_TENANT_TOKENS: 'acme' and 'globex' have the same token"),
    ({"RECKON_WEB_TOKEN": "same-token-0123456789", "RECKON_WEB_TENANT_TOKENS": '{"acme": "same-token-0123456789"}'},
     "setting RECKON_WEB_TENANT_TOKENS: 'every tenant' and 'acme' have the same token"),
    ({"RECKON_RESERVED_VCPUS": "1e400"}, "setting RECKON_RESERVED_VCPUS: must be a finite number"),
    ({"RECKON_USER_TTL_S": "inf"}, "setting RECKON_USER_TTL_S: must be a finite number"),
    ({"RECKON_WORKER_NAME": "w\x01"}, "setting RECKON_WORKER_NAME: must be 1..128 printable characters"),
    ({"RECKON_SINK_GROUP_ID": " "}, "setting RECKON_SINK_GROUP_ID: String should match pattern"),
    ({"RECKON_RETRAIN_SECONDS": "1e-300"}, "setting RECKON_RETRAIN_SECONDS: Input should be greater than or equal to 0.1"),
])
def test_tokens_no_request_can_present_and_infinite_numbers_are_refused(monkeypatch, env: dict, says: str) -> None:
    assert _refusal(monkeypatch, env).startswith(says)


def test_the_log_level_in_any_case(monkeypatch) -> None:
    monkeypatch.setenv("RECKON_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"
