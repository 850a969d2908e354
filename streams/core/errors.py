"""Reckon's exception hierarchy: one root, structured fields where callers need them::

    ReckonError
    ├── SettingsError        a setting is missing or invalid (names it)
    ├── BrokerError          the embedded Kafka broker could not start / answer
    ├── ClickHouseError      a ClickHouse query failed
    │   ├── ClickHouseUnavailable   retryable (network, store busy)
    │   ├── ClickHouseDataError     the values sent cannot be stored (retrying them never helps)
    │   └── StoreLockedError        an embedded chdb store is held by another process
    ├── MigrationError       a migration file is malformed or failed
    ├── PriceSheetError      the price sheet is malformed (names the field)
    └── RetrainError         a retrain cannot run (no data, no version to start from, no torch)
"""

from __future__ import annotations


class ReckonError(Exception):
    """Root of every error Reckon raises on purpose."""


class SettingsError(ReckonError):
    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        super().__init__(f"setting {setting}: {problem}")


class BrokerError(ReckonError):
    """The embedded Kafka broker failed to start or to answer."""


class ClickHouseError(ReckonError):
    """A ClickHouse statement failed for a reason retrying will not fix."""


class ClickHouseUnavailable(ClickHouseError):
    """ClickHouse could not be reached; the caller may retry."""


class ClickHouseDataError(ClickHouseError):
    """The values of a statement cannot be stored or sent (a string that is not valid
    Unicode, a number out of its column's range): the rows are at fault, not ClickHouse."""


class StoreLockedError(ClickHouseError):
    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"the embedded ClickHouse store {path} is held by {holder}; "
            "query it through that process (reckon costs --url) or stop it first"
        )


class MigrationError(ReckonError):
    """A migration file is malformed or failed to apply."""


class PriceSheetError(ReckonError):
    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        super().__init__(f"price sheet {source}: {problem}")


class RetrainError(ReckonError):
    """A retrain cannot run: too little data, no promoted version to start from, or no PyTorch."""
