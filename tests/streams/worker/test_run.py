"""What a worker says once at start."""

from __future__ import annotations

from reckon.streams.core.settings import Settings
from reckon.streams.worker.run import tenancy_warning


def test_tenants_that_leave_out_the_default_tenant_are_warned_of() -> None:
    assert tenancy_warning(Settings(tenants="acme,globex")) == (
        "RECKON_DEFAULT_TENANT 'default' is not in RECKON_TENANTS: events that name no tenant are dead-lettered "
        "(unknown_tenant)")
    assert tenancy_warning(Settings(tenants="acme,globex", default_tenant="acme")) is None
    assert tenancy_warning(Settings()) is None                  # every tenant served


def test_a_worker_whose_broker_is_gone_stops_at_a_second_signal(registry_dir, tmp_path) -> None:
    # With the broker gone, Faust's stop waited on flushes and commits for minutes; a second
    # signal (or STOP_DEADLINE_S) ends it as kill -9 would, which loses nothing.
    import signal
    import time

    from reckon.streams.kafka.broker import EmbeddedBroker, create_topics
    from reckon.streams.worker.stack import start_worker

    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        create_topics(broker.bootstrap_servers, 2)
        worker = start_worker(broker.bootstrap_servers, registry_dir, tmp_path / "w", "gone")
    finally:
        broker.stop()
    time.sleep(2)
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert worker.proc.poll() is None                     # still trying to stop cleanly
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=10) == 1
    assert "a second SIGTERM: exiting now; offsets not committed are read again on restart" in worker.tail()
