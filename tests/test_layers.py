"""The import layers README's "Layout" draws: each subpackage imports only those it may.

Read from the source with `ast` (nothing is imported), so a new upward import fails
here before it shows up as a cycle or as a serving install that pulls in torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# subpackage -> what it may import besides itself (as README and each __init__ say)
MAY_IMPORT: dict[str, set[str]] = {
    "streams.core": set(),
    "streams.kafka": {"streams.core"},
    "streams.clickhouse": {"streams.core"},
    "streams.traffic": {"streams.core"},
    "streams.costs": {"streams.clickhouse", "streams.core"},
    "streams.pipeline": {"streams.costs", "streams.core", "models.core", "models.serving"},
    "streams.sink": {"streams.pipeline", "streams.costs", "streams.clickhouse", "streams.core"},
    "streams.reports": {"streams.costs", "streams.clickhouse", "streams.core", "models.core"},
    "streams.retrain": {"streams.pipeline", "streams.costs", "streams.clickhouse", "streams.core", "models.core",
                        "models.serving", "models.training"},
    "streams.worker": {"streams.retrain", "streams.sink", "streams.reports", "streams.pipeline", "streams.costs",
                       "streams.clickhouse", "streams.kafka", "streams.traffic", "streams.core", "models.core",
                       "models.serving", "models.training"},
    "streams.cli": {"streams.worker", "streams.retrain", "streams.sink", "streams.reports", "streams.pipeline",
                    "streams.costs", "streams.clickhouse", "streams.kafka", "streams.traffic", "streams.core",
                    "models.cli", "models.core", "models.serving", "models.training", "bench"},
    "models.core": set(),
    "models.serving": {"models.core"},
    "models.training": {"models.serving", "models.core"},
    "models.cli": {"models.training", "models.serving", "models.core"},
}


def _unit(path: Path) -> str:
    """`streams/kafka/broker.py` -> `streams.kafka`; `models/cli.py` -> `models.cli`."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:2])


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "reckon" and len(parts) > 1:
                found.add(".".join(parts[1:3]) if parts[1] != "bench" else "bench")
            elif parts[0] in ("streams", "models", "bench"):
                found.add("unmapped " + name)   # would import a generic top-level name
    return found


SOURCES = sorted(p for top in ("streams", "models") for p in (ROOT / top).rglob("*.py")
                 if p.name != "__init__.py" or p.parent.name not in ("streams", "models"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_the_layers_below_it(path: Path) -> None:
    unit = _unit(path)
    assert unit in MAY_IMPORT, f"{unit} is a new subpackage: give it a row in MAY_IMPORT and README"
    upward = _imports(path) - MAY_IMPORT[unit] - {unit}
    assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}, above or beside its layer"


def test_every_subpackage_is_installed() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"reckon." + ".".join(p.parent.relative_to(ROOT).parts)
               for top in ("streams", "models", "bench", "infra") for p in (ROOT / top).rglob("__init__.py")}
    assert on_disk <= listed, on_disk - listed
    # the rest: folders of data files under infra/ (SQL, dashboards, Prometheus), listed so they ship
    data = listed - on_disk
    assert all(p.startswith("reckon.infra.") and (ROOT / p.removeprefix("reckon.").replace(".", "/")).is_dir()
               for p in data), data
