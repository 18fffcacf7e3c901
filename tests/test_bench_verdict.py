"""The benchmark's target lines (bench/report.py), as the README table prints them: a miss is
never rounded into a line that reads like a tie."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def _load_verdict():  # type: ignore[no-untyped-def]
    """bench/ is scripts, not a package, and holds a `redis.py`: it is on sys.path only while
    report.py is imported, and its modules leave sys.modules after, so nothing else (redis-py!)
    is ever shadowed by them."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        return importlib.import_module("report")._verdict
    finally:
        sys.path.pop(0)
        for name in ("report", "common"):
            sys.modules.pop(name, None)


_verdict = _load_verdict()


def test_a_miss_that_two_decimals_would_round_up_is_printed_with_three() -> None:
    assert _verdict(0.698, 0.7, True, "x") == "MISSED by 0.3 % (0.698x < 0.7x)"


def test_a_clear_miss_keeps_two_decimals_and_whole_percent() -> None:
    assert _verdict(0.60, 0.7, True, "x") == "MISSED by 14 % (0.60x < 0.7x)"


def test_the_target_itself_is_met() -> None:
    assert _verdict(0.7, 0.7, True, "x") == "met"
    assert _verdict(9.99, 10, False, " ms") == "met"
    assert _verdict(10.5, 10, False, " ms") == "MISSED by 0.50 ms"
