"""Numbered ClickHouse migrations (infra/clickhouse/NNNN_name.up.sql), applied once each.

`schema_migrations` records what ran with a checksum: a shipped migration that was
edited afterwards is an error, not a silent skip. Each up has a `.down.sql` that exactly
reverses it; `rollback` runs those newest first.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from reckon.streams.clickhouse.client import ClickHouse
from reckon.streams.core.errors import MigrationError

# Shipped in the wheel as package data of `reckon.infra` (the repository's infra/ folder).
MIGRATIONS_DIR = Path(str(files("reckon.infra") / "clickhouse"))
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.up\.sql$")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
ENGINE = MergeTree ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def down_path(self) -> Path:
        return self.path.with_name(self.path.name.replace(".up.sql", ".down.sql"))

    def statements(self, down: bool = False) -> list[str]:
        # Strip line comments first so a ';' inside one does not split a statement.
        text = self.down_path.read_text() if down else self.sql
        body = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
        return [s.strip() for s in body.split(";") if s.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.up.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_name.up.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} also used by {found[version].path.name}")
        found[version] = Migration(version, match.group(2), path)
    if not found:
        # An install without its package data would otherwise "succeed" with no tables.
        raise MigrationError(f"no migrations found in {directory}: the installation is incomplete")
    return [found[v] for v in sorted(found)]


def applied(ch: ClickHouse) -> dict[int, str]:
    ch.command(_LEDGER, tag="migrate")
    return dict(ch.query("SELECT version, checksum FROM schema_migrations", tag="migrate"))


# A migration that rebuilds a table (copies it, then renames the copy into its place) loses what
# a sink inserts into the old one meanwhile: on a server it waits for the table to be this quiet.
QUIET_S = 60
_RENAME = re.compile(r"RENAME\s+TABLE\s+(.+)", re.IGNORECASE | re.DOTALL)


def rebuilt_tables(statements: list[str]) -> set[str]:
    """The tables a migration renames away (`RENAME TABLE a TO b, c TO a`: a and c)."""
    found: set[str] = set()
    for statement in statements:
        match = _RENAME.match(statement)
        if match:
            found.update(pair.split()[0].strip("`") for pair in match.group(1).split(",") if pair.strip())
    return found


def check_quiet(ch: ClickHouse, name: str, statements: list[str], quiet_s: float = QUIET_S) -> None:
    """Refuse (MigrationError) a migration that rebuilds a table something inserted into within
    `quiet_s` seconds: a sink still writing would lose those rows to the table replaced."""
    for table in sorted(rebuilt_tables(statements)):
        age = ch.query("SELECT dateDiff('second', max(modification_time), now()) FROM system.parts "
                       "WHERE database = currentDatabase() AND table = {table:String} AND active",
                       {"table": table}, tag="migrate")[0][0]
        if age is not None and 0 <= age < quiet_s:
            raise MigrationError(f"{name} rebuilds {table}, which was written {age} s ago: stop the sinks writing to "
                                 f"this ClickHouse (workers with RECKON_ROLE=all or sink), then migrate again "
                                 f"(rows they insert meanwhile would be lost)")


def migrate(ch: ClickHouse, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration in order; returns those applied now."""
    done = applied(ch)
    ran: list[Migration] = []
    for migration in discover(directory):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"{migration.path.name} changed after it was applied; add a new migration instead")
            continue
        if not ch.embedded:   # an embedded store has one process: no other sink can be writing it
            check_quiet(ch, migration.path.name, migration.statements())
        for statement in migration.statements():
            try:
                ch.command(statement, tag=f"migrate:{migration.version}")
            except Exception as exc:
                raise MigrationError(f"{migration.path.name} failed: {exc}") from exc
        ch.insert("schema_migrations", [[migration.version, migration.name, migration.checksum]],
                  ["version", "name", "checksum"], tag="migrate")
        ran.append(migration)
    return ran


def rollback(ch: ClickHouse, to_version: int, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Undo every applied migration newer than `to_version`, newest first; returns those undone."""
    done = applied(ch)
    undone: list[Migration] = []
    for migration in reversed(discover(directory)):
        if migration.version <= to_version or migration.version not in done:
            continue
        if not migration.down_path.exists():
            raise MigrationError(f"{migration.path.name} has no {migration.down_path.name}")
        if not ch.embedded:
            check_quiet(ch, migration.down_path.name, migration.statements(down=True))
        for statement in migration.statements(down=True):
            try:
                ch.command(statement, tag=f"rollback:{migration.version}")
            except Exception as exc:
                raise MigrationError(f"{migration.down_path.name} failed: {exc}") from exc
        ch.command("DELETE FROM schema_migrations WHERE version = {version:UInt32}",
                   {"version": migration.version}, tag="rollback")
        undone.append(migration)
    return undone
