"""The argument parser of the benchmarks that parse their own arguments."""

from __future__ import annotations

import argparse
from typing import NoReturn

from reckon.streams.core.errors import ReckonError


class OneLineParser(argparse.ArgumentParser):
    """A usage error as one line (the main CLI prints `error: ...`), not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        raise ReckonError(f"{message} (`{self.prog} --help`)")
