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
