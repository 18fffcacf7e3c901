"""`./dev` runs with nothing but bash, dirname and Python on the PATH (macOS has no sha1sum)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dev_needs_no_sha1sum(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "python3.11").symlink_to(sys.executable)
    checkout = tmp_path / "checkout"  # a set-up checkout: the stamp of this pyproject.toml
    (checkout / ".venv").mkdir(parents=True)
    shutil.copy(ROOT / "dev", checkout / "dev")
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    digest = hashlib.sha1((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    (checkout / ".venv" / f".installed-{digest}").touch()
    done = subprocess.run(
        ["bash", str(checkout / "dev"), "help"],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The stamp matched (no reinstall, which would need pip and more tools) and no tool was
    # missing: the only way out is the usage line.
    assert (done.returncode, done.stderr) == (
        2,
        "usage: ./dev serve|test|conform|lint|bench [args]\n",
    )
