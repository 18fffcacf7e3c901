"""Verdicts per clause, and the ways they leave the run: a table, JSON, JUnit XML and Markdown.

A verdict without evidence is an argument; each FAIL therefore carries the exchange that broke
the clause, so every report can show the request, the response and a curl that reproduces it.
A run that stopped early (an internal error, an interrupt, wrong inputs) still produces every
report that was asked for, marked partial with the reason.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .exchange import Exchange

PASS, FAIL, NOT_CHECKED = "PASS", "FAIL", "NOT CHECKED"

# Exit codes: what a CI gate reads.
EXIT_OK, EXIT_VIOLATION, EXIT_ERROR, EXIT_NOT_CHECKED = 0, 1, 2, 3


class Violation(AssertionError):
    """A clause does not hold; `exchange` is the evidence (None when it spans many requests)."""

    def __init__(self, clause: str, message: str, exchange: Exchange | None = None) -> None:
        super().__init__(f"{clause}: {message}")
        self.clause = clause
        self.message = message
        self.exchange = exchange


class NotChecked(Exception):
    """A clause could not be checked on this target (missing identity, budget, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Verdict:
    clause: str
    section: str
    status: str = PASS
    reason: str = ""
    requests: int = 0
    exchange: Exchange | None = None
    seconds: float = 0.0
    replay_file: str | None = None


@dataclass(slots=True)
class RunReport:
    target: str
    seed: int
    profile: str = "default"
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    requests: int = 0
    creates: int = 0
    projects: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    sequence_digest: str = ""
    control_plane: str = "not used (black box)"
    partial: str | None = None  # why the run stopped before its end
    error: str | None = None  # input, connection or internal error (exit 2)
    fail_on_not_checked: bool = False
    tracebacks: list[str] = field(default_factory=list)  # bugs of the runner, for stderr
    # What sends a replay to the deployment that failed (keys aside: a replay takes them as the
    # run did); without them a replay runs on the in-process mock, where it does not fail.
    replay_flags: str = ""

    def record(self, verdict: Verdict) -> None:
        """Merge: a clause checked twice FAILs if either did, PASSes if one did."""
        old = self.verdicts.get(verdict.clause)
        if old is None or _rank(verdict.status) > _rank(old.status):
            if old is not None:
                verdict.requests += old.requests
                verdict.seconds += old.seconds
            self.verdicts[verdict.clause] = verdict
        else:
            old.requests += verdict.requests
            old.seconds += verdict.seconds

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.verdicts.values())

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts.values() if v.status == FAIL]

    @property
    def not_checked(self) -> list[Verdict]:
        return [v for v in self.verdicts.values() if v.status == NOT_CHECKED]

    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_ERROR
        if self.failed:
            return EXIT_VIOLATION
        if self.not_checked and (self.fail_on_not_checked or self.checked_nothing):
            return EXIT_NOT_CHECKED
        return EXIT_OK

    @property
    def checked_nothing(self) -> bool:
        """Every clause of the run NOT CHECKED: it proves nothing, so it does not pass (as
        pytest fails a run that collected no test); e.g. `--only` a clause whose evidence
        the deployment never gave."""
        return all(v.status == NOT_CHECKED for v in self.verdicts.values())

    def not_checked_reasons(self) -> list[tuple[str, int]]:
        """Why clauses were not checked, most common first (the loud part of the summary)."""
        reasons = Counter(_reason_kind(v.reason) for v in self.not_checked)
        return reasons.most_common()

    def summary(self) -> str:
        line = (
            f"{self.count(PASS)} passed, {self.count(FAIL)} failed, "
            f"{self.count(NOT_CHECKED)} NOT CHECKED · {self.requests} requests · "
            f"{self.creates} jobs started · {self.seconds:.1f}s · seed {self.seed}"
        )
        lines = [line]
        if self.not_checked:
            why = "; ".join(f"{reason} ({n})" for reason, n in self.not_checked_reasons())
            lines.append(f"NOT CHECKED: {self.count(NOT_CHECKED)} clause(s): {why}")
        lines.append(f"control plane: {self.control_plane}")
        if self.partial:
            lines.append(f"PARTIAL RUN: {self.partial}")
        if self.not_checked and self.checked_nothing:
            lines.append("NOTHING CHECKED: no clause of this run could be judged (exit 3)")
        return "\n".join(lines)

    def table(self) -> str:
        width = max([len(c) for c in self.verdicts] + [6])
        lines = [f"{'clause':<{width}}  {'verdict':<11}  note"]
        for v in self.verdicts.values():
            lines.append(f"{v.clause:<{width}}  {v.status:<11}  {v.reason}".rstrip())
        lines.append(self.summary())
        return "\n".join(lines)

    def replay_commands(self, verdict: Verdict) -> tuple[str, str | None]:
        """The same run of one clause, and the exact re-send of its failure file (if saved)."""
        again = f" {self.replay_flags}" if self.replay_flags else ""
        rerun = f"layers-mock conform --seed {self.seed} --only {verdict.clause}{again}"
        if not verdict.replay_file:
            return rerun, None
        return rerun, f"layers-mock conform --replay {shlex.quote(verdict.replay_file)}{again}"

    def failures_text(self, secrets: dict[str, str]) -> str:
        blocks = []
        for v in self.failed:
            block = [f"--- FAIL {v.clause}: {v.reason}"]
            if v.exchange is not None:
                block += exchange_lines(v.exchange, secrets)
            rerun, exact = self.replay_commands(v)
            block.append(f"replay: {rerun}")
            if exact:
                block.append(f"replay exactly: {exact}")
            blocks.append("\n".join(block))
        return "\n\n".join(blocks)

    def as_json(self, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "target": self.target,
            "seed": self.seed,
            "profile": self.profile,
            "partial": self.partial is not None,
            "partialReason": self.partial,
            "error": self.error,
            "exitCode": self.exit_code(),
            "requests": self.requests,
            "requestsByStatus": {str(k): n for k, n in sorted(self.statuses.items())},
            "jobsStarted": self.creates,
            "projectsCreated": self.projects,
            "seconds": round(self.seconds, 3),
            "controlPlane": self.control_plane,
            "sequenceDigest": self.sequence_digest,
            "counts": {s: self.count(s) for s in (PASS, FAIL, NOT_CHECKED)},
            "notCheckedReasons": dict(self.not_checked_reasons()),
            "clauses": [
                {
                    "clause": v.clause,
                    "section": v.section,
                    "verdict": v.status,
                    "reason": v.reason,
                    "requests": v.requests,
                    "seconds": round(v.seconds, 3),
                    **({"evidence": v.exchange.as_dict(secrets)} if v.exchange else {}),
                    **({"replayFile": v.replay_file} if v.replay_file else {}),
                }
                for v in self.verdicts.values()
            ],
        }

    def write_json(self, path: Path, secrets: dict[str, str]) -> None:
        path.write_text(json.dumps(self.as_json(secrets), indent=2), encoding="utf-8")

    def write_junit(self, path: Path, secrets: dict[str, str]) -> None:
        """One testcase per clause; NOT CHECKED is `skipped` with its reason; a partial run
        says so in a property and, when it stopped on an error, in an `error` testcase."""
        suite = ET.Element(
            "testsuite",
            name="layers-conformance",
            tests=str(len(self.verdicts) + (1 if self.error else 0)),
            failures=str(len(self.failed)),
            errors=str(1 if self.error else 0),
            skipped=str(self.count(NOT_CHECKED)),
            time=f"{self.seconds:.3f}",
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("seed", str(self.seed)),
            ("target", self.target),
            ("partial", "true" if self.partial else "false"),
            ("partialReason", self.partial or ""),
            ("jobsStarted", str(self.creates)),
            ("controlPlane", self.control_plane),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        for v in self.verdicts.values():
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{v.section}",
                name=v.clause,
                time=f"{v.seconds:.3f}",
            )
            if v.status == FAIL:
                failure = ET.SubElement(case, "failure", message=v.reason)
                if v.exchange is not None:
                    failure.text = json.dumps(v.exchange.as_dict(secrets), indent=2)
            elif v.status == NOT_CHECKED:
                ET.SubElement(case, "skipped", message=v.reason)
        if self.error:
            case = ET.SubElement(suite, "testcase", classname="conformance.run", name="run")
            ET.SubElement(case, "error", message=self.error)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

    def markdown(self, secrets: dict[str, str]) -> str:
        """For CI step summaries: the verdict line first, then the table, then the failures."""
        icon = {PASS: "✅", FAIL: "❌", NOT_CHECKED: "⚪"}
        head = "PARTIAL " if self.partial else ""
        lines = [f"## {head}Layers conformance: {self.target}", ""]
        lines += [f"**{s}**  " for s in self.summary().splitlines()]
        if self.error:
            lines.append(f"**Error:** {self.error}")
        lines += ["", "| clause | verdict | note |", "|---|---|---|"]
        for v in self.verdicts.values():
            note = v.reason.replace("|", "\\|")
            lines.append(f"| `{v.clause}` | {icon.get(v.status, '')} {v.status} | {note} |")
        for v in self.failed:
            lines += ["", f"### ❌ `{v.clause}`", "", v.reason]
            if v.exchange is not None:
                lines += ["", "```", *exchange_lines(v.exchange, secrets), "```"]
        return "\n".join(lines) + "\n"

    def write_markdown(self, path: Path, secrets: dict[str, str]) -> None:
        path.write_text(self.markdown(secrets), encoding="utf-8")


def exchange_lines(exchange: Exchange, secrets: dict[str, str]) -> list[str]:
    ex = exchange.as_dict(secrets)
    req, resp = ex["request"], ex["response"]
    lines = [f"> {req['method']} {req['url']}"]
    lines += [f"> {k}: {val}" for k, val in req["headers"].items()]
    if req["body"]:
        lines.append(f"> {req['body'][:1500]}")
    lines.append(f"< {resp['status']}")
    lines += [f"< {k}: {val}" for k, val in resp["headers"].items()]
    if resp["body"]:
        lines.append(f"< {resp['body'][:1500]}")
    lines.append(f"reproduce: {ex['curl']}")
    return [shown(line) for line in lines]


def shown(line: str) -> str:
    """One line as a terminal, a CI log and a Markdown summary take it: what is not printable
    is escaped (`\\n`, `\\x1b`). The deployment's bytes were printed raw: an ANSI sequence
    went to the terminal, and a body line of its own could start `::error::` (a GitHub
    Actions workflow command) or close the summary's code fence."""
    if line.isprintable():
        return line  # the usual line, at no cost
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in line)


def _reason_kind(reason: str) -> str:
    """Group NOT CHECKED reasons by their cause, dropping the per-clause detail."""
    return reason.split(": ", 1)[0] if reason.startswith("needs ") else reason


def _rank(status: str) -> int:
    return {NOT_CHECKED: 0, PASS: 1, FAIL: 2}[status]
