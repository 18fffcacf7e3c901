"""What a partner pays: the wheel, its install, `serve` start-up, an in-process round trip, and the
partner-style pytest suite (tests/testing_api/partner_suite.py) run three times.

    .venv/bin/python bench/partner.py                  # everything, warm pip cache
    .venv/bin/python bench/partner.py --cold           # also installs with an empty pip cache
    .venv/bin/python bench/partner.py --only roundtrip

Installs go into fresh virtual environments under a temporary directory (made without pip and
filled with this environment's pip: `pip --python`); `--cold` points pip at an empty cache, so
it downloads everything from the index. Start-up is the time from launching
`layers-mock serve --port 0` from the wheel to its first answer on /_mock/health. The round
trip is create, advance the clock 60 s, poll to `completed`, through `LayersMock.client()`
(httpx, in-process, strict as LayersMock is by default; `roundtrip_not_strict_us` without the
response check), best of five blocks; `roundtrip_app_only_us` is the same three requests
straight into the ASGI app, what the mock itself costs. Only 127.0.0.1 and the package index
are contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (
    "pyproject.toml",
    "README.md",
    "layers_mock_server",
    "layers_mock",
    "openapi",
    "fixtures",
)
SUITE = ROOT / "tests" / "testing_api" / "partner_suite.py"


def say(message: str) -> None:
    print(f"[partner] {message}", file=sys.stderr, flush=True)


def run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], check=True, capture_output=True, text=True, **kwargs
    )


def build_wheel(work: Path) -> Path:
    sources = work / "src"
    sources.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, sources / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "golden"))  # fmt: skip
        else:
            shutil.copy2(path, sources / name)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", work / "dist", sources)  # fmt: skip
    return next((work / "dist").glob("*.whl"))


def install_seconds(work: Path, wheel: Path, extra: str, cache: Path | None) -> tuple[Path, float]:
    venv = work / f"venv-{extra or 'base'}-{'cold' if cache else 'warm'}"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    requirement = f"{wheel}[{extra}]" if extra else str(wheel)
    cache_flags = ["--cache-dir", str(cache)] if cache else []
    started = time.perf_counter()
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
        "--disable-pip-version-check", *cache_flags, requirement)  # fmt: skip
    return venv, time.perf_counter() - started


def startup_seconds(venv: Path, rounds: int = 5) -> float:
    """Median time from exec to the first answer, over `rounds` starts."""
    import httpx

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        server = subprocess.Popen(
            [venv / "bin" / "layers-mock", "serve", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=venv,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[-1]
            httpx.get(f"{url}/_mock/health", timeout=30).raise_for_status()
            times.append(time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return sorted(times)[len(times) // 2]


def roundtrip_us(n: int = 2_000, strict: bool = True) -> float:
    sys.path.insert(0, str(ROOT))
    from layers_mock import LayersMock

    with LayersMock(strict=strict) as mock:
        api = mock.client()
        path = f"/v1/projects/{mock.project}/influencers"

        def once() -> None:
            job = api.post(path, json={}).json()
            mock.advance(60)
            assert api.get(f"/v1/jobs/{job['jobId']}").json()["status"] == "completed"

        for _ in range(200):
            once()
        best = float("inf")
        for _ in range(5):
            mock.reset()
            started = time.perf_counter()
            for _ in range(n // 5):
                once()
            best = min(best, (time.perf_counter() - started) / (n // 5))
    return best * 1e6


def reset_us(n: int = 500) -> float:
    """What the pytest plugin pays per test: one reset of the session's mock."""
    sys.path.insert(0, str(ROOT))
    from layers_mock import LayersMock

    with LayersMock() as mock:
        for _ in range(50):
            mock.reset()
        started = time.perf_counter()
        for _ in range(n):
            mock.reset()
        return (time.perf_counter() - started) / n * 1e6


def app_roundtrip_us(n: int = 2_000) -> float:
    """The same round trip straight into the ASGI app inside one event-loop run: what the mock
    itself costs, without httpx and without entering the loop three times."""
    import asyncio

    import orjson

    sys.path.insert(0, str(ROOT))
    from layers_mock import LayersMock
    from layers_mock._asgi import call_app

    with LayersMock() as mock:
        app = mock._app
        auth = [(b"host", b"bench"), (b"authorization", f"Bearer {mock.keys.full}".encode())]
        path = f"/v1/projects/{mock.project}/influencers"
        advance = orjson.dumps({"seconds": 60})

        async def block(count: int) -> float:
            started = time.perf_counter()
            for _ in range(count):
                _, _, body = await call_app(app, "POST", path, headers=auth)
                job = orjson.loads(body)["jobId"]
                await call_app(app, "POST", "/_mock/clock/advance", body=advance)
                _, _, body = await call_app(app, "GET", f"/v1/jobs/{job}", headers=auth)
                assert orjson.loads(body)["status"] == "completed"
            return (time.perf_counter() - started) / count

        loop = asyncio.new_event_loop()
        loop.run_until_complete(block(200))
        best = min(loop.run_until_complete(block(n // 5)) for _ in range(5))
        loop.close()
    return best * 1e6


def suite_seconds(python: Path, runs: int = 3) -> list[tuple[float, float, str]]:
    """(pytest's own time, wall time, outcome line) for each run of the five-test suite."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(SUITE, Path(folder) / "test_partner.py")
        out = []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(
                [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_partner.py"],
                cwd=folder, capture_output=True, text=True, check=False,
                env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            )  # fmt: skip
            wall = time.perf_counter() - started
            last = done.stdout.strip().splitlines()[-1]
            found = re.search(r"in ([\d.]+)s", last)
            out.append((float(found.group(1)) if found else float("nan"), wall, last))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also install with an empty cache")
    parser.add_argument("--only", choices=("install", "roundtrip", "suite"), default=None)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.only in (None, "install", "suite"):
            say("building the wheel")
            wheel = build_wheel(work)
            results["wheel_kb"] = round(wheel.stat().st_size / 1024, 1)
            extras = [("", None), ("pytest", None), ("conform", None)]
            if args.cold:
                extras += [(e, work / f"cache-{e or 'base'}") for e in ("", "pytest", "conform")]
            venvs = {}
            for extra, cache in extras:
                say(f"installing [{extra or 'base'}] with a {'cold' if cache else 'warm'} cache")
                venv, seconds = install_seconds(work, wheel, extra, cache)
                results[f"install_{extra or 'base'}_{'cold' if cache else 'warm'}_s"] = round(
                    seconds, 1
                )
                venvs[extra] = venv
            say("timing serve start-up from the wheel")
            results["serve_startup_s"] = round(startup_seconds(venvs[""]), 3)
            if args.only in (None, "suite"):
                say("running the partner suite three times from the wheel ([pytest] extra)")
                runs = suite_seconds(venvs["pytest"] / "bin" / "python")
                results["suite_pytest_s"] = [r[0] for r in runs]
                results["suite_wall_s"] = [round(r[1], 2) for r in runs]
                results["suite_outcomes"] = [r[2] for r in runs]
        if args.only in (None, "roundtrip"):
            say("timing the in-process create + advance + poll round trip")
            results["roundtrip_us"] = round(roundtrip_us(), 1)
            results["roundtrip_not_strict_us"] = round(roundtrip_us(strict=False), 1)
            results["roundtrip_app_only_us"] = round(app_roundtrip_us(), 1)
            results["reset_us"] = round(reset_us(), 1)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
