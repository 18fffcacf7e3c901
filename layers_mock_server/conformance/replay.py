"""Failure files (`--failures-dir`) and `conform --replay FILE`.

A failure file holds the failing clause's own requests up to the evidence, the creates whose
ids those requests use, and the clock moves in between: enough to send the same sequence again
to a fresh mock (in-process, same seed) or to any deployment. Keys are stored as ${ENV}
references, never literally; on replay they are taken from the replaying run's identities, and
ids minted by the replayed creates replace the recorded ones in later paths and bodies.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..core.ids import MAX_SEED
from .exchange import ClockMove, Exchange, Step
from .target import BudgetSpent, Identities, Target, TargetUnreachable, TimeUp

if TYPE_CHECKING:
    from .report import Verdict
    from .runner import Options, _Runner

ID = re.compile(r"(job_[0-9A-HJKMNP-TV-Z]{26}|(?:inf_|prj_)?[0-9a-f]{8}-[0-9a-f-]{27})")
VOLATILE = {"requestId", "startedAt", "finishedAt", "createdAt", "updatedAt", "deletedAt"}
SKIP_HEADERS = {"host", "content-length", "accept-encoding", "connection", "user-agent", "accept"}


def _steps_for(target: Target, clause: str, evidence: Exchange | None) -> list[Step]:
    if evidence is None:
        return []
    clauses = {clause, evidence.clause}
    mine = [
        s
        for s in target.steps
        if isinstance(s, Exchange) and s.seq <= evidence.seq and s.clause in clauses
    ] or [evidence]
    used = {m for ex in mine for m in ID.findall(ex.path + ex.request_body.decode("latin-1"))}
    creates = [
        s
        for s in target.steps
        if isinstance(s, Exchange)
        and s.seq < mine[0].seq
        and s.method == "POST"
        and s.status in (201, 202)
        and set(ID.findall(s.response_body.decode("latin-1"))) & used
    ]
    first = min([s.seq for s in creates + mine])
    moves = [s for s in target.steps if isinstance(s, ClockMove) and first <= s.seq < evidence.seq]
    return sorted({s.seq: s for s in creates + mine + moves}.values(), key=lambda s: s.seq)


def save_failure(directory: Path, runner: _Runner, verdict: Verdict) -> Path:
    """Write one failure file and return its path."""
    target = runner.target
    secrets = target.secrets
    steps: list[dict[str, Any]] = []
    for step in _steps_for(target, verdict.clause, verdict.exchange):
        if isinstance(step, ClockMove):
            steps.append({"kind": "clock", "seconds": step.seconds, "seq": step.seq})
            continue
        steps.append(
            {
                "kind": "request",
                "seq": step.seq,
                "method": step.method,
                "path": step.path,
                "headers": {
                    k: v for k, v in step.redacted(secrets).items() if k.lower() not in SKIP_HEADERS
                },
                "body": step.request_body.decode("utf-8", "replace"),
                "status": step.status,
                "response": step.response_body.decode("utf-8", "replace")[:20000],
            }
        )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{verdict.clause}-seed{runner.report.seed}.json"
    path.write_text(
        json.dumps(
            {
                "clause": verdict.clause,
                "reason": verdict.reason,
                "seed": runner.report.seed,
                "target": runner.report.target,
                "evidenceSeq": verdict.exchange.seq if verdict.exchange else None,
                "steps": steps,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return path


def _substitute(text: str, ids: dict[str, str], env: dict[str, str]) -> str:
    for name, value in env.items():
        text = text.replace(f"${{{name}}}", value)
    for old, new in ids.items():
        text = text.replace(old, new)
    return text


def _learn(old: str, new: str, ids: dict[str, str]) -> None:
    try:
        before, after = json.loads(old), json.loads(new)
    except ValueError:
        return
    if not isinstance(before, dict) or not isinstance(after, dict):
        return
    for key in ("jobId", "influencerId", "id", "projectId"):
        a, b = before.get(key), after.get(key)
        if isinstance(a, str) and isinstance(b, str) and a != b:
            ids[a] = b
            bare_a, bare_b = a.split("_", 1)[-1], b.split("_", 1)[-1]
            ids.setdefault(bare_a, bare_b)


def _normal(text: str, ids: dict[str, str]) -> Any:
    try:
        value = json.loads(_substitute(text, ids, {}))
    except ValueError:
        return text
    return _strip(value)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class ReplayError(Exception):
    """A replay that could not do its job: exit 2 and one sentence. Never a traceback and exit
    1, which says the failure came back: a CI job that replays to confirm a fix read a
    deployment that does not answer as the failure reproduced."""


class NotAFailure(ReplayError):
    """A `--replay` file that cannot be read, or is not what `--failures-dir` writes."""


REQUEST_FIELDS = {"method": str, "path": str, "headers": dict, "body": str, "response": str}


def _step_problem(step: Any) -> str | None:
    if not isinstance(step, dict):
        return "a step is not an object"
    if step.get("kind") == "clock":
        seconds = step.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            return "a clock step's seconds is not a number"
        return None if 0 <= seconds < math.inf else "a clock step's seconds is not a wait"
    if step.get("kind") != "request":
        return "a step's kind is neither request nor clock"
    for name, kind in REQUEST_FIELDS.items():
        if not isinstance(step.get(name), kind):
            return f"a request step has no {name}"
    if not all(isinstance(v, str) for v in step["headers"].values()):
        return "a request step's header is not a string"
    status = step.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        return "a request step has no status"
    return None


def load_failure(path: Path) -> dict[str, Any]:
    """The failure file at `path`, checked as a whole before anything is sent."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise NotAFailure(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NotAFailure(f"{WHAT} (not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise NotAFailure(f"{WHAT} (not JSON)") from None
    if not isinstance(data, dict) or not isinstance(data.get("clause"), str):
        raise NotAFailure(f"{WHAT} (no clause)")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise NotAFailure(f"{WHAT} (its seed is not a whole number from 0 to 2^64-1)")
    steps = data.get("steps")
    if not isinstance(steps, list):
        raise NotAFailure(f"{WHAT} (no steps)")
    for problem in map(_step_problem, steps):
        if problem is not None:
            raise NotAFailure(f"{WHAT} ({problem})")
    return data


WHAT = "not a saved failure of --failures-dir"


def replay(path: Path, options: Options) -> int:
    """Send the file's sequence again; exit 1 when the failing answer comes back the same."""
    from .runner import build_target

    data = load_failure(path)
    recorded = int(data.get("seed", options.seed))
    # The seed seeds the in-process mock; a deployment's state is its own, so against a URL
    # the line names the recording's seed, not the run's (it printed 0 for a seed-2 file).
    if options.base_url:
        seeded = f"recorded with seed {recorded}"
    else:
        options.seed = recorded
        seeded = f"seed {recorded}, on a mock seeded alike"
    target = build_target(options)
    env = {name: getattr(target.ids, attr) or "" for attr, name in Identities.ENV.items()}
    print(f"replaying {data['clause']} ({len(data['steps'])} steps, {seeded})")
    try:
        last = _resend(target, data["steps"], env)
    except TargetUnreachable as exc:
        raise ReplayError(f"cannot reach the target: {exc}") from None
    except (ValueError, httpx.InvalidURL) as exc:  # Unsendable, a header httpx cannot encode
        raise ReplayError(f"a step cannot be sent: {exc}") from None
    except (BudgetSpent, TimeUp) as exc:
        raise ReplayError(f"the replay would pass its budget: {exc}") from None
    except KeyboardInterrupt:
        raise ReplayError("interrupted") from None
    if last is None:
        print("nothing to replay: the failure spans the whole run; re-run with its seed")
        return 0
    step, ex, ids = last
    same = step["status"] == ex.status and _normal(step["response"], ids) == _normal(
        ex.response_body.decode("utf-8", "replace"), ids
    )
    reason = data.get("reason")
    print(f"{'REPRODUCED' if same else 'not reproduced'}: {data['clause']}: {reason}")
    return 1 if same else 0


def _resend(
    target: Target, steps: list[dict[str, Any]], env: dict[str, str]
) -> tuple[dict[str, Any], Exchange, dict[str, str]] | None:
    """Send the steps in order; the last request step, its new exchange and the ids learnt."""
    ids: dict[str, str] = {}
    last: tuple[dict[str, Any], Exchange, dict[str, str]] | None = None
    for step in steps:
        if step["kind"] == "clock":
            if target.control is None:
                print(f"  clock +{step['seconds']}s: skipped (no --control-plane)")
            else:
                target.advance(step["seconds"])
                print(f"  clock +{step['seconds']}s")
            continue
        headers = {k: _substitute(v, ids, env) for k, v in step["headers"].items()}
        body = _substitute(step["body"], ids, env).encode()
        ex = target.send(
            step["method"],
            _substitute(step["path"], ids, env),
            headers=headers,
            content=body or None,
        )
        _learn(step["response"], ex.response_body.decode("utf-8", "replace"), ids)
        print(f"  {ex.method} {ex.path}: recorded {step['status']}, now {ex.status}")
        last = (step, ex, ids)
    return last
