"""The dashboard, measured in Debian's Chromium, and the README's screenshot.

    python bench/dashboard.py screenshot          docs/dashboard.png (1440 x 900, the main view)
    python bench/dashboard.py weight [--loads N]  bytes over the wire and first paint on loopback
    python bench/dashboard.py soak [--minutes M]  server RSS while a page stays open under wrk

Each command starts its own `layers-mock serve` on a free 127.0.0.1 port, fills it with the same
small scene (jobs in every stage, a failed one, an injected 503, a 422, a 401, armed rules), and
stops it by PID at the end. Results go to bench/results/dashboard-*.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from common import (
    ROOT,
    Server,
    free_port,
    machine,
    run_wrk,
    say,
    table,
    tree_kb,
    write_results,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACME_KEY = "lp_test_acmefull_Zx81Qm4TnR7vKp2W"
ACME_PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
GLOBEX_KEY = "lp_test_globexfull_M4nB7vC1xZ9lK6jH"
GLOBEX_PROJECT = "prj_7b3e9d21-4a5c-4f6e-8d9b-0c1a2e3f4b5d"
SCREENSHOT = ROOT / "docs" / "dashboard.png"


def serve(*flags: str) -> tuple[Server, str]:
    port = free_port()
    argv = [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", str(port), *flags]
    server = Server("layers-mock", argv, Path(f"/tmp/dashboard-bench-{port}.log"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/_mock/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.05)
    server.stop()
    sys.exit("bench: the mock did not start")


def scene(base: str) -> str:
    """Jobs in every stage, one failed, one completed; a 503 injected by a rule, a 422, a 401."""
    api = httpx.Client(base_url=base, timeout=10)

    def create(key: str = ACME_KEY, project: str = ACME_PROJECT, **headers: str) -> str:
        answer = api.post(
            f"/v1/projects/{project}/influencers",
            headers={"Authorization": f"Bearer {key}", **headers},
            json={"gender": "female"},
        )
        answer.raise_for_status()
        return str(answer.json()["jobId"])

    def advance(seconds: float) -> None:
        api.post("/_mock/clock/advance", json={"seconds": seconds}).raise_for_status()

    def poll(job: str) -> None:
        api.get(f"/v1/jobs/{job}", headers={"Authorization": f"Bearer {ACME_KEY}"})

    first = create()
    advance(8)
    second = create()
    advance(8)
    create(Prefer="outcome=failed; stage=rendering_portrait")
    advance(10)
    create(GLOBEX_KEY, GLOBEX_PROJECT)
    advance(14)
    create()
    advance(20)
    poll(first)
    api.post("/_mock/rules", json={"match": {"operationId": "getJob"}, "fault": "503", "count": 1})
    poll(second)
    poll(second)
    api.post(
        f"/v1/projects/{ACME_PROJECT}/influencers",
        headers={"Authorization": f"Bearer {ACME_KEY}"},
        json={"gender": "robot"},
    )
    api.get("/v1/whoami", headers={"Authorization": "Bearer lp_test_wrong"})
    create()
    advance(3)
    api.post(
        "/_mock/rules",
        json={
            "match": {"operationId": "createInfluencer"},
            "outcome": "failed",
            "stage": "training",
            "count": 1,
        },
    )
    api.post("/_mock/rules", json={"match": {"operationId": "whoami"}, "latencyMs": 1500})
    return first


def browser() -> tuple[Any, Any]:
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    return playwright, playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def take_screenshot(_: argparse.Namespace) -> dict[str, Any]:
    server, base = serve("--clock", "virtual")
    playwright, chromium = browser()
    try:
        scene(base)
        page = chromium.new_page(viewport={"width": 1440, "height": 900})
        page.goto(base + "/_mock/ui")
        page.locator("#jobs-rows tr[data-job]").first.wait_for()
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT))
        say(f"wrote {SCREENSHOT.relative_to(ROOT)}")
        return {"screenshot": str(SCREENSHOT.relative_to(ROOT))}
    finally:
        chromium.close()
        playwright.stop()
        server.stop()


WEIGHT_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  const paint = Object.fromEntries(
    performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
  return {
    html: nav.transferSize, htmlBody: nav.encodedBodySize,
    resources: resources.map(r => ({
      name: new URL(r.name).pathname, transfer: r.transferSize, body: r.encodedBodySize})),
    firstPaint: paint['first-paint'], firstContentfulPaint: paint['first-contentful-paint'],
    domContentLoaded: nav.domContentLoadedEventEnd,
  };
}"""


def weight(args: argparse.Namespace) -> dict[str, Any]:
    server, base = serve("--clock", "virtual")
    playwright, chromium = browser()
    try:
        scene(base)
        runs = []
        for _ in range(args.loads):
            context = chromium.new_context(viewport={"width": 1440, "height": 900})  # cold cache
            page = context.new_page()
            page.goto(base + "/_mock/ui", wait_until="load")
            page.wait_for_function("() => performance.getEntriesByType('paint').length >= 2")
            runs.append(page.evaluate(WEIGHT_JS))
            context.close()
        render_ms = []
        with httpx.Client(base_url=base) as client:  # one kept-alive connection, as the page
            live = client.get("/_mock/ui/live")
            for _ in range(50):
                started = time.perf_counter()
                client.get("/_mock/ui/live")
                render_ms.append((time.perf_counter() - started) * 1000)
        first = runs[0]
        total = first["html"] + sum(r["transfer"] for r in first["resources"])
        result = {
            "loads": args.loads,
            "bytes_over_the_wire": total,
            "html_transfer": first["html"],
            "resources": first["resources"],
            "first_paint_ms_median": statistics.median(r["firstPaint"] for r in runs),
            "first_contentful_paint_ms_median": statistics.median(
                r["firstContentfulPaint"] for r in runs
            ),
            "first_paint_ms_all": [round(r["firstPaint"], 1) for r in runs],
            "live_fragment_bytes": len(live.content),
            "live_round_trip_ms_median": statistics.median(render_ms),
        }
        rows = [
            ["main view, bytes over the wire", total],
            ["  of which the HTML", first["html"]],
            *[[f"  {r['name']}", r["transfer"]] for r in first["resources"]],
            ["first paint, median ms", round(result["first_paint_ms_median"], 1)],
            [
                "first contentful paint, median ms",
                round(result["first_contentful_paint_ms_median"], 1),
            ],
            ["live fragment per refresh, bytes", result["live_fragment_bytes"]],
            ["live fragment round trip, median ms", round(result["live_round_trip_ms_median"], 2)],
        ]
        print(table(["measure", "value"], rows))
        return result
    finally:
        chromium.close()
        playwright.stop()
        server.stop()


def soak(args: argparse.Namespace) -> dict[str, Any]:
    # A slow wall clock (a job takes 20 minutes) keeps every stage bar moving all the while.
    server, base = serve("--clock", "wall", "--speed", "0.05")
    playwright, chromium = browser()
    job = scene(base)
    port = int(base.rsplit(":", 1)[1])
    samples: list[tuple[float, int, int | None]] = []
    refreshes = {"count": 0, "bytes": 0}
    state: dict[str, Any] = {"page": None, "next": 0.0, "t0": time.monotonic()}

    def on_response(response: Any) -> None:
        if "/_mock/ui/live" in response.url:
            refreshes["count"] += 1

    def sampler() -> None:
        now = time.monotonic()
        page = state["page"]
        if page is None and not args.no_page and now - state["t0"] >= args.warmup:
            page = chromium.new_page(viewport={"width": 1440, "height": 900})
            page.on("response", on_response)
            page.goto(base + "/_mock/ui")
            state["page"], state["opened"] = page, now - state["t0"]
            state["cdp"] = page.context.new_cdp_session(page)
            say(f"page opened at {state['opened']:.0f} s")
        if now >= state["next"]:
            heap = None
            if page is not None:  # the page's own JS heap, measured after a full collection
                state["cdp"].send("HeapProfiler.collectGarbage")
                heap = int(state["cdp"].send("Runtime.getHeapUsage")["usedSize"])
            samples.append((now - state["t0"], tree_kb(server.pid), heap))
            state["next"] = now + args.every
        if page is not None:
            page.wait_for_timeout(50)  # lets Playwright deliver the page's events

    seconds = args.warmup + args.minutes * 60
    try:
        say(f"wrk -t1 -c8 GET /v1/jobs/{{id}} for {seconds:.0f} s; page opens at {args.warmup} s")
        load = run_wrk(
            port, "GET", f"/v1/jobs/{job}", seconds=seconds, threads=1, conns=8, sampler=sampler
        )
    finally:
        chromium.close()
        playwright.stop()
        server.stop()
    opened = state.get("opened", args.warmup)  # with --no-page: when it would have opened
    window = [(t, kb) for t, kb, _ in samples if t >= opened + 60]
    slope = 0.0
    if len(window) > 2:
        mean_t = statistics.fmean(t for t, _ in window)
        mean_kb = statistics.fmean(kb for _, kb in window)
        slope = sum((t - mean_t) * (kb - mean_kb) for t, kb in window) / sum(
            (t - mean_t) ** 2 for t, _ in window
        )
    heaps = [h for _, _, h in samples if h]
    result = {
        "minutes_with_page": args.minutes,
        "warmup_s": args.warmup,
        "wrk": {
            k: load.get(k) for k in ("requests", "rps", "lat_p50_us", "lat_p99_us", "sock_errors")
        },
        "page_refreshes": refreshes["count"],
        "rss_kb_at_page_open": next((kb for t, kb, _ in samples if t >= opened), None),
        "rss_kb_first_minute_after_open": [kb for t, kb, _ in samples if opened <= t < opened + 60],
        "rss_kb_end": samples[-1][1] if samples else None,
        "rss_kb_min_max_after_first_minute": (
            [min(kb for _, kb in window), max(kb for _, kb in window)] if window else None
        ),
        "rss_slope_kb_per_min_after_first_minute": round(slope * 60, 1),
        "page_js_heap_bytes_after_gc_first_last": [heaps[0], heaps[-1]] if heaps else None,
        "samples": [[round(t, 1), kb, h] for t, kb, h in samples],
    }
    rows = [
        ["requests under wrk", load.get("requests")],
        ["requests/s", round(load.get("rps", 0))],
        ["page refreshes (/_mock/ui/live)", refreshes["count"]],
        ["server RSS at page open, MB", round((result["rss_kb_at_page_open"] or 0) / 1024, 1)],
        ["server RSS at the end, MB", round((result["rss_kb_end"] or 0) / 1024, 1)],
        [
            "RSS slope after the first minute, KB/min",
            result["rss_slope_kb_per_min_after_first_minute"],
        ],
        [
            "page JS heap after GC, first / last, KB",
            " / ".join(str(h // 1024) for h in heaps[:1] + heaps[-1:]),
        ],
    ]
    print(table(["measure", "value"], rows))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("screenshot").set_defaults(run=take_screenshot)
    w = sub.add_parser("weight")
    w.add_argument("--loads", type=int, default=10)
    w.set_defaults(run=weight)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=20)
    s.add_argument("--warmup", type=float, default=60, help="seconds of load before the page opens")
    s.add_argument("--every", type=float, default=10, help="seconds between RSS samples")
    s.add_argument("--no-page", action="store_true", help="the same load, no page: the control")
    s.set_defaults(run=soak)
    args = parser.parse_args(argv)
    result = args.run(args)
    if args.command != "screenshot":
        path = write_results(f"dashboard-{args.command}", {"machine": machine(), **result})
        say(f"results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
