"""Verdicts per clause, and the three ways they leave the run: a table, JUnit XML and JSON.

A verdict without evidence is an argument; each FAIL therefore carries the exchange that broke
the clause, so the report can print the request, the response and a curl that reproduces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .target import Exchange

PASS, FAIL, NOT_CHECKED = "PASS", "FAIL", "NOT CHECKED"


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
    engine: str
    status: str = PASS
    reason: str = ""
    requests: int = 0
    exchange: Exchange | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class RunReport:
    target: str
    seed: int
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    requests: int = 0
    creates: int = 0
    seconds: float = 0.0
    sequence_digest: str = ""

    def record(self, verdict: Verdict) -> None:
        """Merge: a clause checked by two engines FAILs if either does, PASSes if one did."""
        old = self.verdicts.get(verdict.clause)
        if old is None or _rank(verdict.status) > _rank(old.status):
            if old is not None:
                verdict.requests += old.requests
            self.verdicts[verdict.clause] = verdict
        else:
            old.requests += verdict.requests

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts.values() if v.status == FAIL]

    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def table(self) -> str:
        width = max([len(c) for c in self.verdicts] + [6])
        lines = [f"{'clause':<{width}}  {'verdict':<11}  {'engine':<12}  note"]
        for name in sorted(self.verdicts):
            v = self.verdicts[name]
            lines.append(f"{name:<{width}}  {v.status:<11}  {v.engine:<12}  {v.reason}".rstrip())
        counts = {
            s: sum(v.status == s for v in self.verdicts.values()) for s in (PASS, FAIL, NOT_CHECKED)
        }
        lines.append(
            f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_CHECKED]} not checked · "
            f"{self.requests} requests · {self.creates} jobs started · {self.seconds:.1f}s · "
            f"seed {self.seed} · sequence {self.sequence_digest[:12]}"
        )
        return "\n".join(lines)

    def failures_text(self, secrets: dict[str, str]) -> str:
        blocks = []
        for v in self.failed:
            block = [f"--- FAIL {v.clause}: {v.reason}"]
            if v.exchange is not None:
                ex = v.exchange.as_dict(secrets)
                req, resp = ex["request"], ex["response"]
                block.append(f"> {req['method']} {req['url']}")
                block += [f"> {k}: {val}" for k, val in req["headers"].items()]
                if req["body"]:
                    block.append(f"> {req['body']}")
                block.append(f"< {resp['status']}")
                block += [f"< {k}: {val}" for k, val in resp["headers"].items()]
                if resp["body"]:
                    block.append(f"< {resp['body'][:1500]}")
                block.append(f"reproduce: {ex['curl']}")
            blocks.append("\n".join(block))
        return "\n\n".join(blocks)

    def as_json(self, secrets: dict[str, str]) -> dict[str, Any]:
        return {
            "target": self.target,
            "seed": self.seed,
            "requests": self.requests,
            "creates": self.creates,
            "seconds": round(self.seconds, 3),
            "sequenceDigest": self.sequence_digest,
            "exitCode": self.exit_code(),
            "clauses": [
                {
                    "clause": v.clause,
                    "verdict": v.status,
                    "engine": v.engine,
                    "reason": v.reason,
                    "requests": v.requests,
                    **({"evidence": v.exchange.as_dict(secrets)} if v.exchange else {}),
                }
                for v in sorted(self.verdicts.values(), key=lambda v: v.clause)
            ],
        }

    def write_json(self, path: Path, secrets: dict[str, str]) -> None:
        path.write_text(json.dumps(self.as_json(secrets), indent=2), encoding="utf-8")

    def write_junit(self, path: Path, secrets: dict[str, str]) -> None:
        """One testcase per clause; NOT CHECKED is `skipped` with its reason."""
        suite = ET.Element(
            "testsuite",
            name="layers-conformance",
            tests=str(len(self.verdicts)),
            failures=str(len(self.failed)),
            skipped=str(sum(v.status == NOT_CHECKED for v in self.verdicts.values())),
            time=f"{self.seconds:.3f}",
        )
        for name in sorted(self.verdicts):
            v = self.verdicts[name]
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"conformance.{v.engine}",
                name=name,
                time=f"{v.seconds:.3f}",
            )
            if v.status == FAIL:
                failure = ET.SubElement(case, "failure", message=v.reason)
                if v.exchange is not None:
                    failure.text = json.dumps(v.exchange.as_dict(secrets), indent=2)
            elif v.status == NOT_CHECKED:
                ET.SubElement(case, "skipped", message=v.reason)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _rank(status: str) -> int:
    return {NOT_CHECKED: 0, PASS: 1, FAIL: 2}[status]
