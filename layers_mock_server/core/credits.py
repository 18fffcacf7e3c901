"""Credit wallets: what an organization may spend, derived from its jobs and the clock.

Layers reserves credits the moment a generation starts and settles them when it finishes
(GET /v1/credits field notes): `balance` is the gross wallet, `available = balance -
reservedCredits` floored at 0. Here a job's `credits` fact is what it reserved (0 for a sandbox
`lp_test_` key); a completed job spent it, a failed or canceled one gave it back.

Nothing is written when a job ends, because nothing happens then: a wallet is rebuilt from the
jobs on first use and then kept current by a heap of the moments its running jobs end, so a read
costs O(log n) per job that ended since the last read, never a scan of every job.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .clock import MAX_MS
from .errors import ApiError
from .jobs import JobFacts, end_ms, job_state
from .records import Organization

MAX_YEAR = 9999
INFLUENCER_CREATE_CREDITS = 10  # mock decision: the docs price content formats, not personas
# GET /v1/credits `estimatedCreditsPerFormat`, as the docs print it (content is not simulated)
ESTIMATED_CREDITS_PER_FORMAT = {
    "slideshow_builder": 50,
    "slideshow_remix": 50,
    "video_remix": 120,
    "ugc_remix": 120,
    "auto": 120,
}


@dataclass(slots=True)
class Wallet:
    """One organization's spending, derived from its jobs; `start` is the fixture balance."""

    start: int
    used: int = 0
    used_by_month: dict[str, int] = field(default_factory=dict)  # "YYYY-MM" -> credits
    reserved: int = 0
    running: dict[str, int] = field(default_factory=dict)  # job id -> credits it reserved
    ends: list[tuple[int, str]] = field(default_factory=list)  # heap of known job ends

    @property
    def balance(self) -> int:
        return self.start - self.used

    @property
    def available(self) -> int:
        return max(0, self.balance - self.reserved)

    def track(self, job: JobFacts, now_ms: int) -> None:
        """A job that reserved credits; one that already ended is settled at once."""
        self.running[job.job_id] = job.credits
        self.reserved += job.credits
        self.touch(job, now_ms)

    def touch(self, job: JobFacts, now_ms: int) -> None:
        """Re-read a running job after its facts changed (a cancel, a poll step)."""
        if job.job_id not in self.running:
            return
        state = job_state(job, now_ms)
        if state.status != "running":
            self._finish(job.job_id, state.status, state.finished_ms or now_ms)
            return
        end = end_ms(job)
        if end is not None:  # poll progression: the end is known only when polled to it
            heapq.heappush(self.ends, (end, job.job_id))

    def settle(self, jobs: dict[str, JobFacts], now_ms: int) -> None:
        while self.ends and self.ends[0][0] <= now_ms:
            _, job_id = heapq.heappop(self.ends)
            job = jobs.get(job_id)
            if job is None:  # dropped with its organization: nothing was spent
                self.reserved -= self.running.pop(job_id, 0)
            elif job_id in self.running:
                self.touch(job, now_ms)

    def _finish(self, job_id: str, status: str, finished_ms: int) -> None:
        credits = self.running.pop(job_id)
        self.reserved -= credits
        if status == "completed":
            self.used += credits
            month = _month(finished_ms)
            self.used_by_month[month] = self.used_by_month.get(month, 0) + credits


def build_wallet(org: Organization, jobs: Iterable[JobFacts], now_ms: int) -> Wallet:
    wallet = Wallet(org.credit_balance)
    for job in jobs:
        if job.org_id == org.organization_id and job.credits:
            wallet.track(job, now_ms)
    return wallet


def require(wallet: Wallet, credits: int) -> None:
    """The gate a job start passes: 402 BILLING_EXHAUSTED when the wallet cannot cover it."""
    if credits and wallet.available < credits:
        raise ApiError(
            "BILLING_EXHAUSTED",
            f"Not enough credits: this job needs {credits}, {wallet.available} available.",
            {"requiredCredits": credits, "availableCredits": wallet.available},
        )


def wallet_view(
    org: Organization, wallet: Wallet, now_ms: int, fmt: Callable[[int], str]
) -> dict[str, Any]:
    start_ms, end_ms_ = _period(now_ms)
    used = wallet.used_by_month.get(_month(now_ms), 0)
    return {
        "organizationId": org.organization_id,
        "balance": wallet.balance,
        "available": wallet.available,
        "includedRemaining": 0,
        "prepaidBalance": wallet.balance,
        "reservedCredits": wallet.reserved,
        "includedThisPeriod": 0,
        "usedThisPeriod": used,
        "currentPeriod": {"start": fmt(start_ms), "end": fmt(end_ms_), "usedCredits": used},
        "subscriptionTier": "pro",
        "billingStatus": "active",
        "estimatedCreditsPerFormat": dict(ESTIMATED_CREDITS_PER_FORMAT),
        "ingestCostsBilled": {"github": False, "website": False, "appstore": False},
    }


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def _period(now_ms: int) -> tuple[int, int]:
    """The calendar month (UTC) of the mock clock: the mock's billing period."""
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.year == MAX_YEAR and start.month == 12:  # no January 10000: the clock ends first
        return int(start.timestamp() * 1000), MAX_MS
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)
