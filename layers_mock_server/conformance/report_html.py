"""The HTML report: one self-contained file (no script, no network) a QA engineer can attach to
a ticket: the summary, the verdict table, and each failure with its request, response, curl and
the command that replays it.

It has the dashboard's look: the one stylesheet of layers-mock's HTML (layers_mock_server/ui/static/
layers.css, whose `body.report` rules are this page's) is inlined, so the file works offline
and the two pages cannot drift apart."""

from __future__ import annotations

from html import escape
from pathlib import Path

from ..ui.assets import stylesheet
from .report import NOT_CHECKED, RunReport, exchange_lines


def render_html(report: RunReport, secrets: dict[str, str]) -> str:
    title = f"Layers conformance: {report.target}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{stylesheet()}</style></head>",
        '<body class="report">',
        f"<h1>{escape(title)}</h1>",
        '<div class="summary">',
    ]
    if report.partial:
        parts.append(f'<p class="partial">PARTIAL RUN: {escape(report.partial)}</p>')
    if report.error:
        parts.append(f'<p class="partial">Error: {escape(report.error)}</p>')
    parts += [f"<p>{escape(line)}</p>" for line in report.summary().splitlines()]
    parts.append(
        f"<p>Replay this run: <code>layers-mock conform --seed {report.seed}"
        f"{'' if report.target == 'in-process mock' else ' --base-url ' + escape(report.target)}"
        "</code></p></div>"
    )
    parts += [
        "<h2>Verdicts</h2>",
        "<table><thead><tr><th>clause</th><th>verdict</th><th>note</th><th>requests</th>"
        "</tr></thead><tbody>",
    ]
    for v in report.verdicts.values():
        css = v.status.replace(" ", "-")
        link = (
            f'<a href="#{escape(v.clause)}">{escape(v.clause)}</a>'
            if v.status == "FAIL"
            else (escape(v.clause))
        )
        parts.append(
            f'<tr><td><code>{link}</code></td><td class="verdict {css}">{escape(v.status)}</td>'
            f"<td>{escape(v.reason)}</td><td>{v.requests}</td></tr>"
        )
    parts.append("</tbody></table>")
    for v in report.failed:
        parts += [
            f'<h2 id="{escape(v.clause)}" class="FAIL">FAIL {escape(v.clause)}</h2>',
            f"<p>{escape(v.reason)}</p>",
        ]
        if v.exchange is not None:
            parts.append(f"<pre>{escape(chr(10).join(exchange_lines(v.exchange, secrets)))}</pre>")
        rerun, exact = report.replay_commands(v)
        parts.append(
            f"<p>Replay: <code>{escape(rerun)}</code>"
            + (f" · exactly: <code>{escape(exact)}</code>" if exact else "")
            + "</p>"
        )
    skipped = sum(v.status == NOT_CHECKED for v in report.verdicts.values())
    parts.append(f"<p>{skipped} clause(s) NOT CHECKED; the reasons are in the table.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(report: RunReport, path: Path, secrets: dict[str, str]) -> None:
    path.write_text(render_html(report, secrets), encoding="utf-8")
