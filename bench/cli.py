"""`reckon bench ...`: benchmarks registered on the main CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reckon.streams.cli.help import CommandList

bench = typer.Typer(cls=CommandList, rich_markup_mode=None, add_completion=False,
                    help="Benchmarks (ratios measured within one run).", no_args_is_help=True)


def _registry() -> Path:
    from reckon.streams.core.settings import load_settings
    from reckon.streams.worker.stack import demo_model

    registry = load_settings().registry_dir.resolve()
    demo_model(registry)
    return registry


def _print(result: dict, json_out: bool) -> None:
    if json_out:
        print(json.dumps(result))
        return
    table = Table(show_header=False)
    for key, value in result.items():
        table.add_row(key, Text(str(value)))
    Console().print(table)


_USERS = typer.Option(500, min=1, help="distinct users in the generated clicks")
_INTERLEAVE = typer.Option(False, "--interleave", help="spread each user's events over the stream "
                           "(live traffic) instead of back-to-back sessions (a replayed log)")


@bench.command("stream")
def stream(events: int = typer.Option(1_000_000, min=100_000, help="backlog size: every path should get at "
                                      "least --min-seconds of work from it (a warning says when one did not)"),
           users: int = _USERS, interleave: bool = _INTERLEAVE,
           repeats: int = typer.Option(3, min=1, help="runs of each rate (min / median / max reported)"),
           min_seconds: float = typer.Option(2.0, min=0.5, max=600.0, help="least work timed per rate"),
           latency_seconds: float = typer.Option(10.0, min=1.0, max=3600.0, help="seconds of load per latency level"),
           json_out: bool = typer.Option(False, "--json")) -> None:
    """Raw aiokafka read vs Faust vs worker ingest vs full path; latency at 10/50/90 % load vs the broker's floor."""
    from reckon.bench.stream import run

    with tempfile.TemporaryDirectory(prefix="reckon-bench-") as tmp:
        _print(run(_registry(), Path(tmp), events=events, users=users, interleave=interleave, repeats=repeats,
                   min_seconds=min_seconds, latency_s=latency_seconds), json_out)


@bench.command("api")
def api(events: int = typer.Option(200_000, min=10_000, help="backlog the worker's rate is measured on"),
        users: int = _USERS,
        clients: int = typer.Option(8, min=1, help="concurrent clients reading cached recommendations"),
        seconds: float = typer.Option(10.0, min=1.0, max=3600.0, help="seconds of requests under load"),
        rate: float = typer.Option(500.0, min=0.0, max=1e6, help="cached GETs per second, all clients together "
                                   "(open loop); 0: each client as fast as answers come"),
        json_out: bool = typer.Option(False, "--json")) -> None:
    """GET /recommendations (cached, fresh=1) and POST /events latency while the worker ingests at half its rate."""
    from reckon.bench.api import run

    with tempfile.TemporaryDirectory(prefix="reckon-bench-") as tmp:
        _print(run(_registry(), Path(tmp), events=events, users=users, clients=clients, seconds=seconds,
                   request_rate=rate), json_out)


chaos_app = typer.Typer(rich_markup_mode=None, add_completion=False)


@chaos_app.command()
def chaos(scenario: list[str] = typer.Option(["kill9", "clickhouse", "broker", "fuzz", "poison"],
                                             help="kill9 | clickhouse | broker | fuzz | poison (repeatable)"),
          events: int = typer.Option(5000, min=100), fuzz_events: int = typer.Option(10_000, min=100),
          json_out: bool = typer.Option(False, "--json")) -> None:
    """The long-form fault suite on the embedded stack; exits 1 if an invariant fails."""
    from reckon.bench.faults import SCENARIOS
    from reckon.bench.poison import poison

    scenarios = {**SCENARIOS, "poison": poison}
    unknown = set(scenario) - set(scenarios)
    if unknown:
        raise typer.BadParameter(f"unknown scenario(s) {sorted(unknown)}; choose from {sorted(scenarios)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="reckon-chaos-") as tmp:
        registry = _registry()
        for name in scenario:
            results.append(scenarios[name](registry, Path(tmp), fuzz_events if name == "fuzz" else events))
            if not json_out:
                _print(results[-1], False)
    if json_out:
        print(json.dumps(results))
    raise typer.Exit(0 if all(r["ok"] for r in results) else 1)


# The model and cost benchmarks keep their own argument parsers (`reckon bench quality --help`).
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@bench.command("quality", context_settings=_PASS_THROUGH)
def quality(ctx: typer.Context) -> None:
    """Model quality on a public dataset in its published protocol (bench/MODEL.md)."""
    from reckon.bench.model_quality import main

    main(ctx.args)


@bench.command("scoring", context_settings=_PASS_THROUGH)
def scoring(ctx: typer.Context) -> None:
    """Scoring throughput and cost per 1k scores of a registered version, per device and variant."""
    from reckon.bench.model_scoring import main

    main(ctx.args)


@bench.command("costs", context_settings=_PASS_THROUGH)
def costs(ctx: typer.Context) -> None:
    """What cost accounting costs: overhead, accounted vs /proc seconds, sink vs full path, freshness."""
    from reckon.bench.costs import main

    main(ctx.args)



@bench.command("coldstart", context_settings=_PASS_THROUGH)
def coldstart(ctx: typer.Context) -> None:
    """New-item hit rate on drifted traffic: cold start off, uninformed, as served (one run)."""
    from reckon.bench.coldstart import main

    main(ctx.args)
