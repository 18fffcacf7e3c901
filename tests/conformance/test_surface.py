"""The runner on the surface around the flow: what it fuzzes against a URL (and what it leaves
alone), rate-limit headers in the client's time on a sped-up wall clock, and no false alarm
from the rate-limit clauses when a window lasts a fraction of a second."""

from __future__ import annotations

from typing import Any

from conformance.rewrite import Ctx, Req, Resp, Rewrite
from conformance.serving import IDS, focused, serve
from support import FULL, SEED, STANDARD

from layers_mock_server.conformance import contract as c
from layers_mock_server.conformance.report import FAIL, NOT_CHECKED, PASS
from layers_mock_server.conformance.runner import Options, run
from layers_mock_server.settings import Settings, make_app


def wall_app(speed: float) -> Any:
    return make_app(Settings(clock="wall", speed=speed, seed=SEED))


def test_the_fuzzer_covers_the_new_surface_against_a_url_and_leaves_the_header_out() -> None:
    """Against a URL Schemathesis fuzzes the project list, the wallet and clone (rejected
    cases only, on the run's own influencer), never patches or archives a project that is
    not the run's, and never sends X-Layers-Organization (a made-up one is only a 404)."""
    seen: list[Req] = []

    def record(req: Req, ctx: Ctx) -> None:
        seen.append(req)

    with serve(Rewrite(wall_app(600), on_request=record)) as url:
        only = ["fuzz.", "jobs.accepted-envelope"]  # the sample job: what clone is fuzzed on
        options = Options(base_url=url, identities=IDS, only=only, poll_interval=0.02)
        options.examples = 4
        report, target = run(options)
    assert report.verdicts["fuzz.schemathesis"].status == PASS, report.table()
    assert target is not None
    fuzz = [r for r in seen if r.headers.get("user-agent", "").startswith("schemathesis")]
    sent = {(r.method, r.path) for r in fuzz}
    assert ("GET", c.PROJECTS) in sent and ("GET", c.CREDITS) in sent
    clones = {p for m, p in sent if m == "POST" and p.endswith("/clone")}
    assert clones and all(c.bare(p.split("/")[3]) in target.owned for p in clones)
    changes = [r for r in seen if r.method in ("PATCH", "DELETE") and r.path.startswith(c.PROJECTS)]
    assert changes == []  # no project of its own: none to patch or archive
    assert not [r for r in fuzz if c.ORG_HEADER.lower() in r.headers]


def _window_length_reset(req: Req, resp: Resp, ctx: Ctx) -> None:
    """X-RateLimit-Reset is the window's length in mock seconds (60), whatever the speed."""
    if "x-ratelimit-reset" in resp.headers:
        resp.headers["x-ratelimit-reset"] = "60"


def test_reset_is_in_real_seconds_on_a_sped_up_wall_clock() -> None:
    with serve(wall_app(60)) as url:
        report, _ = run(focused(url, "ratelimits.client-time"))
    assert report.verdicts["ratelimits.client-time"].status == PASS, report.table()
    with serve(Rewrite(wall_app(60), None, _window_length_reset)) as url:
        report, _ = run(focused(url, "ratelimits.client-time"))
    assert report.verdicts["ratelimits.client-time"].status == FAIL, report.table()
    assert "at most 1 s" in report.verdicts["ratelimits.client-time"].reason


def test_rate_limit_clauses_raise_no_false_alarm_when_a_window_lasts_0_1_s() -> None:
    """At --speed 600 a minute's window lasts a tenth of a second: the runner cannot tell
    two requests in one window apart, nor reach a limit inside one; that is NOT CHECKED."""
    with serve(wall_app(600)) as url:
        options = Options(base_url=url, identities=IDS, only=["ratelimits."], poll_interval=0.02)
        report, _ = run(options)
    assert report.count(FAIL) == 0, report.table()


def _one_request_window_then_a_new_one(req: Req, ctx: Ctx) -> None:
    """The throttle key's first write lands alone in a window that then ends: the next window
    starts at the same Remaining (59), so Remaining never goes up to show the roll-over."""
    if req.key == STANDARD and req.method == "PATCH" and "first" not in ctx.mem:
        ctx.mem["first"] = True
        req.headers["authorization"] = f"Bearer {FULL}"  # another bucket: the earlier window


def _as_a_0_1_s_window(req: Req, resp: Resp, ctx: Ctx) -> None:
    """Every answer of the throttle key says what a 0.1 s window says: Reset 1; the earlier
    window's one answer carries the standard tier's numbers."""
    if req.method != "PATCH" or "x-ratelimit-reset" not in resp.headers:
        return
    resp.headers["x-ratelimit-reset"] = "1"
    if req.key == FULL and ctx.mem.pop("first", None):
        ctx.mem["first"] = False
        resp.headers.update({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59"})


def test_61_writes_over_two_windows_are_not_called_a_broken_limit() -> None:
    """61 writes served before the 429, the first alone in its window, are NOT CHECKED (the
    runner cannot be sure they fell in one window), never "61 served, the limit is 60"."""
    app = Rewrite(wall_app(1), _one_request_window_then_a_new_one, _as_a_0_1_s_window)
    with serve(app) as url:
        options = Options(base_url=url, identities=IDS, only=["ratelimits.429-retry-after"])
        report, _ = run(options)
    verdict = report.verdicts["ratelimits.429-retry-after"]
    assert verdict.status == NOT_CHECKED, report.table()
    assert "may have spanned two windows" in verdict.reason


class SlowAnswers:
    """The runner's clock (Options.now), moved only while the server answers: each answer of
    the throttle key's writes comes back `first` seconds after the first was sent, `then`
    seconds after each later one was, so when the server answered (at the start of that
    time, here) is known to the runner only between the two."""

    def __init__(self, first: float, then: float, reset: str) -> None:
        self.now, self.first, self.then, self.reset = 0.0, first, then, reset
        self.writes = 0

    def __call__(self, req: Req, resp: Resp, ctx: Ctx) -> None:
        if req.method != "PATCH" or "x-ratelimit-reset" not in resp.headers:
            return
        self.writes += 1
        self.now += self.first if self.writes == 1 else self.then
        resp.headers["x-ratelimit-reset"] = self.reset

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def options(self, url: str, clause: str) -> Options:
        return Options(
            base_url=url, identities=IDS, only=[clause], now=lambda: self.now, sleep=self.sleep
        )


def test_a_slow_answer_before_a_windows_end_is_not_called_a_count_that_went_up() -> None:
    """Reset 2: the window of the throttle key's first write ends 1 to 2 s after the server
    answered it, and that answer took 0.8 s to come back. The next write's answer came 0.45 s
    after it, from a new window (Remaining 59 again): 1.25 s after the first was sent, so the
    two may be in two windows. It was "remaining 59 then 59" (0.45 s is less than Reset - 1.5)."""
    slow = SlowAnswers(first=0.8, then=0.45, reset="2")

    def a_new_window_each_time(req: Req, resp: Resp, ctx: Ctx) -> None:
        slow(req, resp, ctx)
        if req.method == "PATCH" and resp.status != 429 and "x-ratelimit-remaining" in resp.headers:
            resp.headers["x-ratelimit-remaining"] = "59"
        if slow.writes == 2:
            slow.then = 1.5  # from the third on, no two surely in one window

    with serve(Rewrite(wall_app(1), None, a_new_window_each_time)) as url:
        report, _ = run(slow.options(url, "ratelimits.remaining-counts-down"))
    verdict = report.verdicts["ratelimits.remaining-counts-down"]
    assert verdict.status != FAIL, report.table()
    assert slow.writes > 2


def test_61_writes_are_not_called_a_broken_limit_when_the_first_answer_came_back_slowly() -> None:
    """Reset 3: the first write's window ends 2 to 3 s after the server answered it, and that
    answer took 0.8 s to come back; the 60 writes and the 429 after it came 0.02 s apart. All
    the answers arrived within 1.22 s (less than Reset - 1.5), but 2.02 s after the first was
    sent: the last ones may be in the next window. NOT CHECKED, not "61 served"."""
    slow = SlowAnswers(first=0.8, then=0.02, reset="3")

    def first_alone_and_slow(req: Req, resp: Resp, ctx: Ctx) -> None:
        _as_a_0_1_s_window(req, resp, ctx)  # the first's answer: the standard tier's numbers
        slow(req, resp, ctx)

    app = Rewrite(wall_app(1), _one_request_window_then_a_new_one, first_alone_and_slow)
    with serve(app) as url:
        report, _ = run(slow.options(url, "ratelimits.429-retry-after"))
    verdict = report.verdicts["ratelimits.429-retry-after"]
    assert verdict.status == NOT_CHECKED, report.table()
    assert "may have spanned two windows" in verdict.reason
    assert slow.writes == 62  # the first, 60 in the key's own bucket, then its 429
