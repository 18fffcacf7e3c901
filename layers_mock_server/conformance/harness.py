"""Hypothesis, used so that a deployment can never make it crash.

Hypothesis assumes the code under test is a pure function of the generated data: when a test
fails it runs the failing example again, and it checks that every run draws the same data as
the last run that took the same path. A deployment is neither pure nor repeatable (a job moves
on, a budget runs out), so, left alone, a real violation came out as `FlakyStrategyDefinition`
and a spent budget as `InvalidDefinition`. Here the first stop (a violation, a spent budget or
time share) is captured inside the test, and from then on the test fails the same way, at
once, without a request: Hypothesis stops generating, its final replay of the failing example
fails identically (so it is never flaky), and the captured stop is the verdict. With
`--database` the failing example is saved by Hypothesis and tried first next time.

State machines cannot fail "the same way at once" (the replay would stop at another step), so
their rules return normally once stopped (`stateful=True`) and the few remaining steps are
no-ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, example, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from .report import NotChecked, Violation
from .target import BudgetSpent, ShareSpent, TimeUp, Unsendable

T = TypeVar("T")
STOPS = (Violation, NotChecked, TimeUp, BudgetSpent)


def run_settings(max_examples: int, database: Any = None, derandomize: bool = False) -> settings:
    """One Hypothesis profile for every engine: an example database only when asked (a seed
    alone must reproduce a run), no deadline (a deployment's latency is not a bug), no
    shrinking (it would spend the budget of real requests re-sending near-copies)."""
    phases: tuple[Phase, ...] = (Phase.explicit, Phase.generate)
    if database is not None:
        phases = (Phase.explicit, Phase.reuse, Phase.generate)
    return settings(
        max_examples=max_examples,
        database=database,
        derandomize=derandomize,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,  # the report is ours; nothing on stdout
    )


class Stopped(Exception):
    """Raised by a guarded test once it has captured its stop (see the module docstring)."""


@dataclass(slots=True)
class Capture:
    """The first stop of a Hypothesis run, and how many examples ran to the end before it."""

    stop: BaseException | None = None
    done: int = 0

    def guard(self, fn: Callable[[], None], stateful: bool = False) -> None:
        if self.stop is not None:
            if stateful:
                return
            raise Stopped
        try:
            fn()
        except Unsendable:
            return  # the HTTP client cannot send this case: nothing to judge
        except STOPS as exc:
            self.stop = exc
            if stateful:
                return
            raise Stopped from exc
        self.done += 1

    def call(self, fn: Callable[[], T]) -> T | None:
        """`guard` for a function whose value is needed (None once stopped)."""
        box: list[T] = []
        self.guard(lambda: box.append(fn()), stateful=True)
        return box[0] if box else None

    def finish(self, note: Callable[[str], None]) -> None:
        """Raise the captured stop; a time share that ran out after some examples is a PASS
        on what was checked, with a note saying how much."""
        stop = self.stop
        if stop is None:
            return
        if isinstance(stop, TimeUp) and self.done > 0:
            what = "its time share" if isinstance(stop, ShareSpent) else "--max-time"
            note(f"{self.done} example(s) before {what} ran out")
            return
        raise stop


def run_guarded(test: Callable[[], None], capture: Capture, note: Callable[[str], None]) -> None:
    try:
        test()
    except Stopped:
        pass
    except HypothesisException:
        if capture.stop is None:
            raise  # a bug of ours (a strategy that cannot be satisfied, ...): exit 2
    capture.finish(note)


def prop(
    strategy: st.SearchStrategy[Any],
    *,
    examples: int,
    run_seed: int,
    database: Any = None,
    note: Callable[[str], None] = lambda _: None,
    explicit: tuple[Any, ...] = (),
) -> Callable[[Callable[[Any], None]], None]:
    """Run `fn(value)` as a guarded Hypothesis property: seeded, no shrinking, never flaky.
    The `explicit` values (the contract's boundaries) are tried first, every time."""

    def decorate(fn: Callable[[Any], None]) -> None:
        capture = Capture()

        def test(value: Any) -> None:
            capture.guard(lambda: fn(value))

        for value in reversed(explicit):  # Phase.explicit: before any generated case
            test = example(value)(test)
        run_guarded(
            run_settings(examples, database)(seed(run_seed)(given(strategy)(test))), capture, note
        )

    return decorate
