"""A stranger's Schemathesis run, reading only openapi/layers.yaml, finds no failure.

Exactly what someone who has never seen this repository would type: `layers-mock serve`, then
`st run` on the published spec with every default check and phase (examples, coverage,
fuzzing, stateful), the full-scope fixture key and the fixture project pinned in a
`schemathesis.toml`. Nothing of the project's own conformance suite (hooks, pinned headers,
relaxed checks) is used. The only changes from the defaults bound the run for the suite: five
examples per operation (the coverage phase is not bounded by it and still runs whole), a seed,
and no example database. Anything the mock answers that the spec does not allow, or that the
spec allows and the mock refuses, fails this test with Schemathesis' own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from layers_mock_server.spec import PARTNER_SPEC, partner_spec

FULL_SCOPE_KEY = "lp_test_acmefull_Zx81Qm4TnR7vKp2W"
PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"


def test_schemathesis_defaults_find_nothing(tmp_path: Path) -> None:
    server_log = (tmp_path / "server.log").open("w")  # a file: a chatty server never blocks
    server = subprocess.Popen(
        [sys.executable, "-m", "layers_mock_server.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=server_log,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert banner.startswith("layers-mock listening on "), banner
        url = banner.split()[-1]
        (tmp_path / "schemathesis.toml").write_text(
            f'[parameters]\n"path.projectId" = "{PROJECT}"\n', encoding="utf-8"
        )
        st = Path(sys.executable).with_name("st")
        run = subprocess.run(
            [
                str(st),
                "run",
                str(PARTNER_SPEC),
                "--url",
                url,
                "-H",
                f"Authorization: Bearer {FULL_SCOPE_KEY}",
                "--max-examples",
                "5",
                "--seed",
                "1",
                "--generation-database",
                "none",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.terminate()
        server.communicate(timeout=20)
        server_log.close()
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert "Traceback" not in (tmp_path / "server.log").read_text(), "the server crashed"
    assert run.returncode == 0, report
    every = len(partner_spec().operations)
    assert f"Tested: {every}" in run.stdout, report  # no operation was skipped
