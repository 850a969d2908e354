"""Migrations: numbered, each reversed by its down, applied once, never edited after."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reckon.streams.clickhouse.migrations import MIGRATIONS_DIR, discover, migrate
from reckon.streams.core.errors import MigrationError

# In a child process: chdb opens one store per process and the session store is taken.
ROUND_TRIP = """
import json, sys
from reckon.streams.clickhouse.client import connect
from reckon.streams.clickhouse.migrations import migrate, rollback
ch = connect(sys.argv[1])
def tables():
    return sorted(r[0] for r in ch.query("SELECT name FROM system.tables WHERE database = currentDatabase()"))
def columns():
    return sorted(r[0] for r in ch.query("SELECT name FROM system.columns WHERE table = 'cost_events' "
                                         "AND database = currentDatabase()"))
first = [m.version for m in migrate(ch)]
full = (tables(), columns())
undone = [m.version for m in rollback(ch, 2)]
base = (tables(), columns())
again = [m.version for m in migrate(ch)]
print(json.dumps({"first": first, "undone": undone, "again": again, "full": full, "base": base,
                  "same": (tables(), columns()) == full}))
"""


def test_every_migration_is_numbered_and_has_a_down() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for m in migrations:
        assert m.down_path.exists(), m.down_path.name
        assert m.statements(down=True)


@pytest.mark.integration
def test_up_down_up_round_trip(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", ROUND_TRIP, f"chdb://{tmp_path / 'store'}"], capture_output=True,
                         text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    versions = [m.version for m in discover()]
    assert result["first"] == versions and result["again"] == versions[2:]
    assert result["undone"] == list(reversed(versions[2:]))
    full_tables, full_columns = result["full"]
    base_tables, base_columns = result["base"]
    assert {"cost_hour", "prices", "recommendations_log", "clicks_log", "alerts", "attributed_clicks",
            "cost_per_attributed_click", "unit_costs_hourly", "idle_share", "cost_by_dims", "online_quality"} \
        <= set(full_tables)
    assert "cost_per_1k_recs" not in full_tables            # replaced by unit_costs_hourly (0016)
    assert set(base_tables) == {"cost_events", "cost_minute", "cost_minute_mv", "schema_migrations"}
    assert {"ram_gb_seconds", "clickhouse_bytes", "staffed_seconds"} <= set(full_columns) - set(base_columns)
    assert result["same"]


@pytest.mark.integration
def test_an_applied_migration_edited_later_is_refused(clickhouse, tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    assert migrate(clickhouse, copy) == []                   # same files: nothing to do
    target = copy / "0006_prices.up.sql"
    target.write_text(target.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match="0006_prices.up.sql changed after it was applied"):
        migrate(clickhouse, copy)
