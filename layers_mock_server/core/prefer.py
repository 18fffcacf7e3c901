"""RFC 7240 `Prefer` preferences the mock honours; a real server ignores them.

Partner code can send the same header to the mock and to production: `outcome=failed` decides
how a job ends, `fault=503` injects an error, `latency=1500` delays the answer. Unknown
preferences are ignored as the RFC says; a known one with a bad value is a 422, because a
silently ignored typo would make a partner's failure test pass for the wrong reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import validation
from .jobs import STAGES

OUTCOMES = ("completed", "failed", "canceled")
PROGRESSIONS = ("time", "poll")
FAULTS = ("429", "500", "503", "drop")
MAX_LATENCY_MS = 60_000
# ASCII digits only: str.isdigit() accepts "²" (int() then raises) and "٣" (int() reads 3).
LATENCY = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True, slots=True)
class Preferences:
    outcome: str | None = None
    stage: str | None = None
    progression: str | None = None
    fault: str | None = None
    latency_ms: int | None = None

    def applied(self) -> str | None:
        """How the journal names what was injected into this request."""
        marks = [f"fault={self.fault}"] if self.fault else []
        if self.latency_ms:
            marks.append(f"latency={self.latency_ms}")
        return ",".join(marks) or None


NONE = Preferences()
CHOICES = {"outcome": OUTCOMES, "stage": STAGES, "progression": PROGRESSIONS, "fault": FAULTS}
KNOWN = (*CHOICES, "latency")  # the preferences the mock honours, in the order it checks them


def preference_problem(name: str, value: str) -> str | None:
    """What is wrong with one preference's value (None: nothing). The testing API's
    `prefer()` asks this too, so a typo is refused where it was written, in the same words."""
    allowed = CHOICES.get(name)
    if allowed is not None:
        return None if value in allowed else f"{name} must be one of {', '.join(allowed)}."
    if name == "latency" and not (LATENCY.fullmatch(value) and int(value) <= MAX_LATENCY_MS):
        return f"latency must be a whole number of milliseconds, 0 to {MAX_LATENCY_MS}."
    return None


def _pairs(header: str) -> list[tuple[str, str]]:
    pairs = []
    for preference in header.split(","):
        for part in preference.split(";"):
            name, _, value = part.strip().partition("=")
            if name:
                pairs.append((name.strip().lower(), value.strip().strip('"')))
    return pairs


def parse_prefer(header: str | None) -> Preferences:
    if not header:
        return NONE
    found: dict[str, str] = {}
    problems: list[str] = []
    for name, value in _pairs(header):
        if name in KNOWN:
            # RFC 7240 section 2: only a preference's first instance counts, the others are
            # ignored without an error (the last won: `outcome=failed, outcome=completed`
            # completed the job a test had asked to fail)
            found.setdefault(name, value)
    for name in KNOWN:
        problem = preference_problem(name, found[name]) if name in found else None
        if problem is not None:
            problems.append(problem)
    if problems:
        raise validation("Invalid header.", field_errors={"Prefer": problems})
    return Preferences(
        outcome=found.get("outcome"),
        stage=found.get("stage"),
        progression=found.get("progression"),
        fault=found.get("fault"),
        latency_ms=int(found["latency"]) if "latency" in found else None,
    )
