"""Jinja2 templates of the dashboard, autoescaped: every value from a client is text, not markup.

Project names, paths and queries come from partners' requests, and a dashboard that ran a
`<script>` hidden in a project name would hand the control plane to whoever created it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any, get_args

from markupsafe import Markup

from ..core.jobs import STAGES, Status

if TYPE_CHECKING:
    from jinja2 import Environment

TONE_BY_STATUS = {"running": "info", "completed": "ok", "failed": "bad", "canceled": "idle"}
FILL_BY_STATUS = {"running": "cur", "failed": "failed", "canceled": "canceled"}
SEGMENT = 100 / len(STAGES)


def tone(status: Any) -> str:
    """The badge class of a job status or an HTTP status: a colour that matches the words."""
    if isinstance(status, int):
        return {2: "ok", 3: "info", 4: "warn"}.get(status // 100, "bad")
    return TONE_BY_STATUS.get(str(status), "idle")


def short(identifier: str) -> str:
    """`job_01KX…3B7T`: enough to tell ids apart in a table; the full id is in the title."""
    prefix, _, rest = identifier.partition("_")
    if not rest or len(rest) <= 12:
        return identifier
    return f"{prefix}_{rest[:6]}…{rest[-4:]}"


def hms(timestamp: str) -> str:
    """The time of day of a mock timestamp (`2026-01-01T00:00:15.000Z` → `00:00:15.000`)."""
    return timestamp[11:23] if len(timestamp) >= 23 else timestamp


def stage_svg(job: dict[str, Any]) -> Markup:
    """The bar's picture: one segment per stage, done ones full, the current one filled as far
    as the job is through it. Built here, not in the template: it is drawn for every job on
    every refresh, and only numbers and fixed class names go into it."""
    done = len(STAGES) if job["status"] == "completed" else int(job["stageIndex"])
    parts = [
        '<svg viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
    ]
    for n in range(len(STAGES)):
        x = n * SEGMENT + 0.5
        kind = "done" if n < done else "seg"
        parts.append(f'<rect class="{kind}" x="{x:g}" width="{SEGMENT - 1:g}" height="6"/>')
        if n == done:
            ran = job["stageProgress"] if job["status"] == "running" else 1.0
            width = (SEGMENT - 1) * float(ran)
            fill = FILL_BY_STATUS[job["status"]]
            parts.append(f'<rect class="{fill}" x="{x:g}" width="{width:.2f}" height="6"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and fixed class names only


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@cache
def environment() -> Environment:
    # Imported here, on the dashboard's first page: `serve` starts ~25 ms sooner without it.
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("layers_mock_server.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,  # a misspelt name is an error in the tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(tone=tone, short=short, hms=hms, pretty=pretty, stage_svg=stage_svg)
    env.globals.update(stages=STAGES, statuses=get_args(Status))
    return env


def render(template: str, **context: Any) -> bytes:
    return environment().get_template(template).render(**context).encode("utf-8")
