"""Migrations: numbered, each reversed by its down, applied once, never edited after."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reckon.streams.clickhouse.migrations import MIGRATIONS_DIR, check_quiet, discover, migrate, rebuilt_tables
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


def test_a_migration_names_the_tables_it_rebuilds() -> None:
    (rekey,) = [m for m in discover() if m.version == 17]
    assert rebuilt_tables(rekey.statements()) == {"clicks_log", "clicks_log_rekeyed"}
    assert rebuilt_tables(rekey.statements(down=True)) == {"clicks_log", "clicks_log_rekeyed"}
    assert all(not rebuilt_tables(m.statements()) for m in discover() if m.version != 17)   # the others add


@pytest.mark.integration
def test_a_table_a_sink_just_wrote_is_not_rebuilt_under_it(clickhouse) -> None:
    """0017 copies clicks_log and renames the copy into its place: a server's sink inserting
    meanwhile wrote into the table replaced, and those rows were dropped with it."""
    (rekey,) = [m for m in discover() if m.version == 17]
    clickhouse.command("INSERT INTO clicks_log (event_id, ts, tenant, user_id, item_id, action, session_id) "
                       "VALUES ('quiet-1', now64(3), 'quiet', 'u', 'i', 'view', 's')")
    with pytest.raises(MigrationError, match=r"0017_events_keyed_by_user.up.sql rebuilds clicks_log, which was "
                                             r"written \d+ s ago: stop the sinks"):
        check_quiet(clickhouse, rekey.path.name, rekey.statements())
    check_quiet(clickhouse, rekey.path.name, rekey.statements(), quiet_s=0)      # quiet long enough: it goes on
