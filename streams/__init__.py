"""Reckon's event path and cost accounting.

Exceptions (all derive from :class:`streams.errors.ReckonError`)::

    ReckonError
    ├── SettingsError        a setting is missing or invalid (names it)
    ├── BrokerError          the embedded Kafka broker could not start / answer
    ├── ClickHouseError      a ClickHouse query failed
    │   ├── ClickHouseUnavailable   retryable (network, store busy)
    │   └── StoreLockedError        an embedded chdb store is held by another process
    ├── MigrationError       a migration file is malformed or failed
    └── PriceSheetError      the price sheet is malformed (names the field)
"""
