"""No command imports a package of the `test` extra: an install without it (what users and the
image have) must import every module and start `reckon chaos` and `reckon bench`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# The `test` extra's import names (pyproject.toml), and pytest's own internals.
BLOCKED = ("pytest", "_pytest", "pytest_timeout", "hypothesis", "yaml", "trustme", "hadolint", "check_jsonschema")

_PRELUDE = textwrap.dedent(f"""
    import importlib.abc, sys

    class _Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {BLOCKED!r}:
                raise ImportError(f"{{name}} is a test-only package")
            return None

    sys.meta_path.insert(0, _Blocked())
""")

_IMPORT_ALL = _PRELUDE + textwrap.dedent("""
    import importlib, pkgutil
    for root in ("reckon.streams", "reckon.models", "reckon.bench"):
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, root + "."):
            importlib.import_module(info.name)
""")

_COMMAND = _PRELUDE + textwrap.dedent("""
    from reckon.streams.cli.main import main
    main()
""")


def test_every_module_imports_without_the_test_extra() -> None:
    out = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]


def test_chaos_and_bench_start_without_the_test_extra() -> None:
    for command in (["chaos", "--help"], ["bench", "--help"]):
        out = subprocess.run([sys.executable, "-c", _COMMAND, *command], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "Usage" in out.stdout, out.stderr[-3000:]
