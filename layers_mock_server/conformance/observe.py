"""The run's transcript, indexed for observers: every exchange, grouped the ways clauses ask.

Observers run after the active clauses and judge every request any clause (or engine) sent:
a status that goes back, an ETag that changes while the job does not, a missing rate-limit
header are bugs wherever they show up. An observer that finds no evidence for its clause says
NOT CHECKED (e.g. no failed job was seen), never PASS.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from . import contract as c
from .exchange import ClockMove, Exchange
from .report import NotChecked
from .session import Session, body_of

JOB_READ = c.job_path("")
INFLUENCER = c.influencer_path("")


@dataclass
class Transcript:
    session: Session
    exchanges: list[Exchange] = field(default_factory=list)

    @cached_property
    def partner(self) -> list[Exchange]:
        return [ex for ex in self.exchanges if ex.partner]

    @cached_property
    def accepts(self) -> list[Exchange]:
        """Every 202 of createInfluencer, in order."""
        return [
            ex
            for ex in self.partner
            if ex.status == 202 and c.operation_of(ex.method, ex.path) == c.OPERATIONS[0]
        ]

    @cached_property
    def accepted_by_job(self) -> dict[str, Exchange]:
        out: dict[str, Exchange] = {}
        for ex in self.accepts:
            job_id = body_of(ex).get("jobId")
            if isinstance(job_id, str):
                out.setdefault(job_id, ex)
        return out

    @cached_property
    def job_of_influencer(self) -> dict[str, str]:
        """bare influencer id -> job id, from the 202s."""
        out: dict[str, str] = {}
        for job_id, ex in self.accepted_by_job.items():
            inf = body_of(ex).get("influencerId")
            if isinstance(inf, str):
                out[c.bare(inf)] = job_id
        return out

    @cached_property
    def job_reads(self) -> dict[str, list[Exchange]]:
        """job id -> every GET of it that answered 200 or 304, in order."""
        out: dict[str, list[Exchange]] = defaultdict(list)
        for ex in self.partner:
            path = ex.bare_path
            read = ex.method == "GET" and path.startswith(JOB_READ) and path.count("/") == 3
            if read and ex.status in (200, 304):
                out[path[len(JOB_READ) :]].append(ex)
        return dict(out)

    @cached_property
    def job_bodies(self) -> dict[str, list[tuple[Exchange, dict[str, Any]]]]:
        """job id -> every 200 read with its body (the run's own jobs only)."""
        out: dict[str, list[tuple[Exchange, dict[str, Any]]]] = {}
        for job_id, reads in self.job_reads.items():
            if job_id not in self.accepted_by_job:
                continue
            out[job_id] = [(ex, body_of(ex)) for ex in reads if ex.status == 200]
        return out

    @cached_property
    def influencer_reads(self) -> dict[str, list[Exchange]]:
        """bare influencer id -> every 200 GET of it, in order (the run's own only)."""
        out: dict[str, list[Exchange]] = defaultdict(list)
        for ex in self.partner:
            path = ex.bare_path
            if ex.method == "GET" and path.startswith(INFLUENCER) and ex.status == 200:
                bare_id = c.bare(path[len(INFLUENCER) :])
                if bare_id in self.job_of_influencer:
                    out[bare_id].append(ex)
        return dict(out)

    @cached_property
    def list_reads(self) -> list[Exchange]:
        op = c.OPERATIONS[1]
        return [
            ex
            for ex in self.partner
            if ex.status == 200 and c.operation_of(ex.method, ex.path) == op
        ]

    @cached_property
    def clock_moves(self) -> list[int]:
        """Sequence numbers of the moves of the mock's clock (between exchanges)."""
        return [step.seq for step in self.session.target.steps if isinstance(step, ClockMove)]

    def moved_between(self, a: Exchange, b: Exchange) -> float:
        """Seconds the mock's clock was moved between two exchanges."""
        return sum(
            step.seconds
            for step in self.session.target.steps
            if isinstance(step, ClockMove) and a.seq < step.seq < b.seq
        )

    def identity_of(self, ex: Exchange) -> str | None:
        """Which identity (Identities attribute) sent this request, if any."""
        auth = ex.request_header("Authorization") or ""
        token = auth.removeprefix("Bearer ").strip()
        for attr in type(self.session.target.ids).ENV:
            if token and getattr(self.session.target.ids, attr) == token:
                return attr
        return None

    def tier_of(self, ex: Exchange) -> str | None:
        identity = self.identity_of(ex)
        if identity is None:
            return None
        tier = self.session.whoami.get(identity, {}).get("rateLimitTier")
        return tier if isinstance(tier, str) else None

    def timeline(self, job_id: str) -> list[tuple[Exchange, str, dict[str, Any]]]:
        """Job and influencer reads of one job, merged in order: ("job"|"influencer", body)."""
        accepted = self.accepted_by_job.get(job_id)
        if accepted is None:
            return []
        inf = c.bare(str(body_of(accepted).get("influencerId")))
        rows = [(ex, "job", body) for ex, body in self.job_bodies.get(job_id, [])]
        rows += [(ex, "influencer", body_of(ex)) for ex in self.influencer_reads.get(inf, [])]
        return sorted(rows, key=lambda row: row[0].seq)

    def need(self, found: bool, what: str) -> None:
        if not found:
            raise NotChecked(f"no evidence: {what}")
