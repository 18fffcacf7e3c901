"""Keyset cursors, and a project's influencer list filtered by status with a page in O(limit).

An influencer's status is derived from its job and the clock (influencers.py), so a status
filter cannot read a stored column, and scanning the list for matches costs O(influencers) when
matches are rare (0.6 s at 112k influencers). But a job that advances with time has a timeline
fixed when it starts: pending from startedAt, training from a fixed offset, terminal (ready or
failed) from another. Jobs start in list order and the mock clock never runs backwards, so the
members of one timeline that are in a given status at `now` form one contiguous run of list
positions, found by bisecting the start times. The list keeps its influencers grouped by
timeline (a handful: one per outcome and stage of failure); the few whose status no longer
follows the clock alone (a canceled job, a job advanced by polls) sit in a group per status that
changes only when the simulator re-places them. A page merges the runs that match, newest
first: O(groups · log n + limit).

A cursor is a keyset position: the page after it holds the items strictly before that position.
Every string of 1 to 12 Crockford base32 digits is a position, so any well-formed cursor is
valid, as the spec's pattern promises, including one the server never minted.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from heapq import merge
from itertools import islice

from sortedcontainers import SortedList

from .errors import validation
from .ids import CROCKFORD
from .jobs import JobFacts, end_ms, influencer_status, job_state

CURSOR_DIGITS = 12
TRAINING_STAGE = 2  # rendering_portrait: from its start the influencer reads `training`
_DIGIT = {c: i for i, c in enumerate(CROCKFORD)}
# (training begins, terminal begins) as offsets from startedAt, and the terminal status;
# training is None when the job ends before it would train
Timeline = tuple[int | None, int, str]


def encode_cursor(position: int) -> str:
    digits = []
    while True:
        position, digit = divmod(position, 32)
        digits.append(CROCKFORD[digit])
        if not position:
            return "".join(reversed(digits))


def decode_cursor(cursor: str) -> int:
    """The position a cursor names; the spec's pattern has already been checked."""
    if not 0 < len(cursor) <= CURSOR_DIGITS or any(c not in _DIGIT for c in cursor):
        raise validation("Invalid query.", field_errors={"cursor": ["Malformed cursor."]})
    position = 0
    for c in cursor:
        position = position * 32 + _DIGIT[c]
    return position


def timeline(job: JobFacts) -> Timeline | None:
    """The job's fixed timeline, or None when the clock alone no longer decides its status."""
    if job.progression == "poll" or job.cancel_ms is not None:
        return None
    end = end_ms(job)
    if end is None:
        return None
    end -= job.started_ms
    training = job.schedule_ms[TRAINING_STAGE]  # where the influencer turns `training`
    terminal = "ready" if job.outcome == "completed" else "failed"
    return (training if training < end else None, end, terminal)


class ProjectListing:
    """The live (not deleted) influencers of one project, by list position."""

    __slots__ = ("fixed", "started", "timelines")

    def __init__(self) -> None:
        # by position: when its job started, never decreasing (the clock never runs back)
        self.started = array("q")
        self.timelines: dict[Timeline, SortedList] = {}
        self.fixed: dict[str, SortedList] = {}  # status -> positions, moved only by place()

    def append(self, position: int, job: JobFacts, now_ms: int, live: bool = True) -> None:
        """The next position of the list (positions are appended in order)."""
        assert position == len(self.started)
        started = job.started_ms
        if self.started and started < self.started[-1]:
            started = self.started[-1]  # an imported state that runs backwards: stay sorted
        self.started.append(started)
        if live:
            self.place(position, job, now_ms)

    def place(self, position: int, job: JobFacts, now_ms: int) -> None:
        # get, then build only if missing: setdefault would build a SortedList per call
        group = timeline(job)
        if group is not None:
            members = self.timelines.get(group)
            if members is None:
                members = self.timelines[group] = SortedList()
        else:
            status = influencer_status(job_state(job, now_ms))
            members = self.fixed.get(status)
            if members is None:
                members = self.fixed[status] = SortedList()
        members.add(position)

    def unplace(self, position: int, job: JobFacts, now_ms: int) -> None:
        """Before the facts that decide where it sits change (cancel, poll step, delete)."""
        group = timeline(job)
        if group is not None:
            self.timelines[group].discard(position)
        else:
            self.fixed[influencer_status(job_state(job, now_ms))].discard(position)

    def page(self, before: int, limit: int, status: str | None, now_ms: int) -> list[int]:
        """Up to `limit + 1` positions below `before`, newest first, in `status` (or any)."""
        runs = []
        for group, members in self.timelines.items():
            low, high = self._run(group, status, now_ms)
            high = min(high, before)
            if low < high:
                runs.append(members.irange(low, high - 1, reverse=True))
        for fixed_status, members in self.fixed.items():
            if status in (None, fixed_status) and before > 0:
                runs.append(members.irange(maximum=before - 1, reverse=True))
        return list(islice(merge(*runs, reverse=True), limit + 1))

    def _run(self, group: Timeline, status: str | None, now_ms: int) -> tuple[int, int]:
        """The positions whose status is `status` at `now_ms`, for one timeline."""
        size = len(self.started)
        if status is None:
            return 0, size
        training, end, terminal = group
        done = bisect_right(self.started, now_ms - end)  # below this: terminal
        if status == terminal:
            return 0, done
        if status in ("ready", "failed"):
            return 0, 0
        left_pending = bisect_right(self.started, now_ms - (end if training is None else training))
        if status == "training":
            return (done, left_pending) if training is not None else (0, 0)
        return left_pending, size  # pending
