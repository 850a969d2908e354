"""How the CLI lists its commands in `--help`."""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup


class CommandList(TyperGroup):
    """Lists each command with its first sentence whole, wrapped (click cuts it with "..." to
    what fits beside the names)."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:     # typer's own click's types
        rows = [(name, command.get_short_help_str(limit=1_000)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
