"""bench/run.py's output: one row per server (its median round, with the spread of all rounds),
the ratios of the mock to the others, the targets of issue 14, and README.md's table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from common import ROOT, table

CASES = ("create", "get")
# the bare endpoint each mock row is compared with: the same engine
BARE_OF = {"layers-mock": "bare", "layers-mock-uvicorn": "bare-uvicorn"}
README = ROOT / "README.md"
README_START = "<!-- bench-table:start (written by ./dev bench --update-readme) -->"
README_END = "<!-- bench-table:end -->"
TARGET_VS_WIREMOCK = 1.5
TARGET_VS_BARE = 0.70
TARGET_P99_MS = 10.0
TARGET_START_S = 0.5
TARGET_IDLE_MB = 60.0


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per server: per case the round with the median requests/s (its latency and CPU
    come with it), the spread of requests/s over all rounds, and medians of the rest."""
    out = dict(rounds[0])
    out["rounds"] = rounds
    for case in CASES:
        done = sorted((r[case] for r in rounds if "rps" in r.get(case, {})), key=lambda w: w["rps"])
        if done:
            median = dict(done[len(done) // 2])
            median["spread_pct"] = 100 * (done[-1]["rps"] - done[0]["rps"]) / median["rps"]
            median["all_rps"] = [round(r[case]["rps"]) for r in rounds if "rps" in r.get(case, {})]
            out[case] = median
    for field in ("startup_s", "rss_idle_mb", "rss_load_mb", "rss_hwm_mb"):
        values = sorted(r[field] for r in rounds if field in r)
        if values:
            out[field] = values[len(values) // 2]
    return out


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _row(r: dict[str, Any], compact: bool = False) -> list[Any]:
    row = [r["server"], r.get("engine", "-"), r.get("startup_s", "-"), r.get("rss_idle_mb", "-")]
    if not compact:
        row.append(r.get("rss_load_mb", "-"))
    for case in CASES:
        w = r.get(case) or {}
        if "rps" not in w:
            row += ["-"] * (4 if compact else 7)
            continue
        row += [f"{w['rps']:.0f}", f"{w['spread_pct']:.0f}"]
        if not compact:
            row.append(_ms(w["lat_p50_us"]))
        row += [_ms(w["lat_p99_us"]), f"{w['cpu_us_per_req']:.0f}"]
        if not compact:
            row += [f"{w['cores']:.2f}", int(w["err_status"]) + int(w["sock_errors"])]
    return row


def _header(compact: bool = False) -> list[str]:
    head = ["server", "engine", "start_s", "idle_MB"] + ([] if compact else ["load_MB"])
    for case in CASES:
        head += [f"{case}/s", "±%"] + ([] if compact else ["p50_ms"]) + ["p99_ms", "cpu_us"]
        if not compact:
            head += ["cores", "errors"]
    return head


def _by_name(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["server"]: r for r in results if all("rps" in r.get(c, {}) for c in CASES)}


def _ratio_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    named = _by_name(results)
    rows = []
    for mock_name, own_bare in BARE_OF.items():
        mock = named.get(mock_name)
        if mock is None:
            continue
        for other in named.values():
            if other is mock or other["server"] in BARE_OF:
                continue
            if other["server"].startswith("bare") and other["server"] != own_bare:
                continue  # a bare endpoint is compared only on its own engine
            if mock_name != "layers-mock" and other["server"] != own_bare:
                continue  # peers are compared with the default engine only
            row: list[Any] = [f"{mock_name} / {other['server']}"]
            for case in CASES:
                m, o = mock[case], other[case]
                row.append(f"{m['rps'] / o['rps']:.2f}")
                # requests per core-second: what each would do on one core
                row.append(f"{(m['rps'] / m['cores']) / (o['rps'] / o['cores']):.2f}")
                row.append(f"{_ms(m['lat_p99_us'])} vs {_ms(o['lat_p99_us'])}")
            rows.append(row)
    return rows


def _verdict(value: float, target: float, higher_is_better: bool, unit: str = "") -> str:
    met = value >= target if higher_is_better else value < target
    if met:
        return "met"
    if higher_is_better:
        # A miss that two decimals would round up to the target is printed with three, so
        # the line never reads "0.70x < 0.7x".
        short = 100 * (target - value) / target
        digits = 3 if round(value, 2) >= target else 2
        return (
            f"MISSED by {short:.{0 if short >= 1 else 1}f} % "
            f"({value:.{digits}f}{unit} < {target}{unit})"
        )
    return f"MISSED by {value - target:.2f}{unit}"


def targets(results: list[dict[str, Any]]) -> list[str]:
    named = _by_name(results)
    mock = named.get("layers-mock")
    if mock is None:
        return ["(no layers-mock row: no targets)"]
    lines = []
    wiremock, bare = named.get("wiremock"), named.get("bare")
    for case in CASES:
        if wiremock is not None:
            ratio = mock[case]["rps"] / wiremock[case]["rps"]
            lines.append(
                f"{case:6} >= {TARGET_VS_WIREMOCK} x wiremock: {ratio:.2f}  "
                + _verdict(ratio, TARGET_VS_WIREMOCK, True, "x")
            )
        if bare is not None:
            ratio = mock[case]["rps"] / bare[case]["rps"]
            lines.append(
                f"{case:6} >= {TARGET_VS_BARE} x bare ({mock.get('engine')}): {ratio:.2f}  "
                + _verdict(ratio, TARGET_VS_BARE, True, "x")
            )
        p99 = mock[case]["lat_p99_us"] / 1000
        lines.append(
            f"{case:6} p99 < {TARGET_P99_MS:g} ms: {p99:.2f} ms  "
            + _verdict(p99, TARGET_P99_MS, False, " ms")
        )
    start, idle = mock["startup_s"], mock["rss_idle_mb"]
    lines.append(
        f"start-up < {TARGET_START_S} s: {start} s  " + _verdict(start, TARGET_START_S, False, " s")
    )
    lines.append(
        f"idle RSS < {TARGET_IDLE_MB:g} MB: {idle} MB  "
        + _verdict(idle, TARGET_IDLE_MB, False, " MB")
    )
    return lines


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# layers-mock benchmark, {meta['date']}: {meta['cpus']} CPUs ({meta['cpu_model']}), "
        f"shared by server and wrk; loopback only; load average before: {meta['load_before']}",
        f"# load: {meta['load']}; {meta['rounds']} round(s): each row is the server's median "
        "round per case, ±% the spread (max - min) / median of requests/s over the rounds",
        "",
        table(_header(), [_row(r) for r in results]),
        "(cpu_us = server CPU time per request, all its processes and threads; cores = server "
        "CPU / wall time, 1.00 = one core busy; errors = non-2xx answers plus socket errors)",
        "",
        "## rounds (requests/s)",
    ]
    for r in results:
        if "create" in r and "all_rps" in r["create"]:
            lines.append(
                f"{r['server']:20} create {r['create']['all_rps']}  get {r['get']['all_rps']}"
            )
    ratio_rows = _ratio_rows(results)
    if ratio_rows:
        lines += [
            "",
            "## ratios (requests/s; per core = requests per CPU-second; p99 as mock vs other)",
            table(
                ["mock / other", "create", "per core", "create p99", "get", "per core", "get p99"],
                ratio_rows,
            ),
        ]
    lines += ["", "## targets (issue 14, median rounds of this run)", *targets(results)]
    for r in results:
        if r.get("note"):
            lines.append(f"note: {r['server']}: {r['note']}")
    return "\n".join(lines)


def readme_block(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    ratios = _ratio_rows(results)
    body = [
        f"{meta['date'][:10]}, {meta['cpus']} vCPU, {meta['load']}, {meta['rounds']} round(s), "
        f"median round, ±% = spread over the rounds; load average before {meta['load_before']}",
        "",
        table(_header(compact=True), [_row(r, compact=True) for r in results]),
    ]
    if ratios:
        body += [
            "",
            table(
                ["mock / other", "create", "per core", "create p99", "get", "per core", "get p99"],
                ratios,
            ),
        ]
    body += ["", *targets(results)]
    return "\n".join([README_START, "```", *body, "```", README_END])


def update_readme(block: str, path: Path = README) -> bool:
    """Replace the block between the markers in README.md; False if the markers are missing."""
    text = path.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: block, text, count=1))
    return True
