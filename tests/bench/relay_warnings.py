"""The relay's warning lines of a bench run, passed on to pytest, so a stalled read ticker or a
restart shows in the CI log's warnings summary even when the smoke test passes."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any


def pass_on(results: Iterable[dict[str, Any]]) -> None:
    """One pytest warning per line each run of ``bench.run --json`` kept in "warnings"."""
    for result in results:
        for line in result["warnings"]:
            warnings.warn(f"bench {result['relay']} logged: {line}", stacklevel=2)
