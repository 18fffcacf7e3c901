"""The peers bench/run.py measures the mock against: Prism and WireMock, npm-installed outside
the repo on first use (default /tmp/layers-mock-bench-peers), each skipped with a message when
it cannot be installed or run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from shutil import which

from common import say

PRISM_VERSION = "5.16"
WIREMOCK_VERSION = "3.13.2"


def npm_install(name: str, package: str, folder: Path) -> bool:
    """Install one npm package into `folder`; False (with a message) when that cannot be done."""
    if not which("npm"):
        say(f"{name}: skipped (npm is not installed)")
        return False
    say(f"{name}: npm install {package} into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", package]
    try:
        subprocess.run(command, check=True, timeout=600, capture_output=True)
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"{name}: skipped (npm install failed: {exc})")
        return False
    return True


def prism_bin(folder: Path) -> Path | None:
    """Prism's CLI in `folder`, installing it from npm there if it is missing."""
    binary = folder / "node_modules" / ".bin" / "prism"
    if binary.exists():
        return binary
    if not npm_install("prism", f"@stoplight/prism-cli@{PRISM_VERSION}", folder):
        return None
    return binary if binary.exists() else None


def wiremock_jar(folder: Path) -> Path | None:
    """WireMock's standalone jar from the npm package in `folder` (installed if missing), or None
    with a message when npm or java is unavailable."""
    jar = (
        folder
        / "node_modules"
        / "wiremock"
        / "build"
        / f"wiremock-standalone-{WIREMOCK_VERSION}.jar"
    )
    if not which("java"):
        say("wiremock: skipped (java is not installed)")
        return None
    if not jar.exists() and not npm_install("wiremock", f"wiremock@{WIREMOCK_VERSION}", folder):
        return None
    if not jar.exists():
        say(f"wiremock: skipped ({jar} missing after npm install)")
        return None
    try:
        subprocess.run(
            ["java", "-jar", str(jar), "--version"], check=True, timeout=60, capture_output=True
        )
    except (subprocess.SubprocessError, OSError) as exc:
        say(f"wiremock: skipped (java -jar {jar.name} --version failed: {exc})")
        return None
    return jar


def peer_version(name: str, peer: Path) -> str:
    argv = [str(peer)] if name == "prism" else ["java", "-jar", str(peer)]
    out = subprocess.run(
        [*argv, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "?"
