-- The price sheets, mirrored from streams/prices.toml (and any sheet loaded later): one row
-- per (sheet version, unit price, device type, effective_from), so history can be re-priced
-- under any sheet. Small: read with FINAL.
CREATE TABLE IF NOT EXISTS prices
(
    sheet_version  LowCardinality(String),
    name           LowCardinality(String),   -- vcpu_hour | gb_ram_hour | ... | gpu_hour
    device         LowCardinality(String),   -- gpu_hour only: device type (h100, default, ...)
    usd            Decimal64(12),
    effective_from DateTime64(3, 'UTC'),
    loaded_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (sheet_version, name, device, effective_from)
