"""What a partner gets from `pip install`: the wheel, in clean virtual environments outside the
checkout: the base install, and each set of extras.

The wheel is built from a copy of the sources (so the checkout gets no build/ or egg-info) with
the dev environment's setuptools, and installed with the dev environment's pip into venvs made
without pip (`pip --python`), through pip's cache. Everything then runs from a temporary
directory with no PYTHONPATH, so nothing can be found in the source tree: a path resolved
relative to the sources, or a contract file left out of the wheel, fails here. Each install is
a venv of its own: the base install, the `pytest` extra alone for the testing API and the
plugin, the `conform` extra for the conformance run (one venv the extras were added to made
the base-install tests right only when they ran first).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (
    "pyproject.toml",
    "README.md",
    "layers_mock_server",
    "layers_mock",
    "openapi",
    "fixtures",
)
PARTNER_SUITE = Path(__file__).parent / "testing_api" / "partner_suite.py"
PROJECT = "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
TIMEOUT = 300


@dataclass
class WheelEnv:
    work: Path
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self) -> dict[str, str]:
        drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
        return {k: v for k, v in os.environ.items() if k not in drop}

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(a) for a in args],
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def pip_install(self, requirement: str) -> None:
        self.run(sys.executable, "-m", "pip", "--python", self.bin / "python", "install",
                 "--disable-pip-version-check", "-q", requirement)  # fmt: skip


def _copy_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "golden")
    target.mkdir()
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("build")
    sources, dist = work / "src", work / "dist"
    _copy_sources(sources)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(dist), str(sources)],
        check=True, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    shutil.rmtree(sources)  # from here on, the only copy of the code is the wheel's
    (built,) = dist.glob("layers_mock-*.whl")
    return built


def install(tmp_path_factory: pytest.TempPathFactory, wheel: Path, *extras: str) -> WheelEnv:
    """The wheel with `extras`, in a venv and a directory of its own."""
    work = tmp_path_factory.mktemp("partner")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = WheelEnv(work, wheel, venv)
    env.pip_install(f"{wheel}[{','.join(extras)}]" if extras else str(wheel))
    return env


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> WheelEnv:
    return install(tmp_path_factory, wheel)


@pytest.fixture(scope="module")
def with_pytest(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> WheelEnv:
    """The testing API and the plugin need the `pytest` extra alone."""
    return install(tmp_path_factory, wheel, "pytest")


@pytest.fixture(scope="module")
def with_conform(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> WheelEnv:
    return install(tmp_path_factory, wheel, "pytest", "conform")


def test_the_wheel_carries_the_contract_and_the_fixtures(base: WheelEnv) -> None:
    names = set(zipfile.ZipFile(base.wheel).namelist())
    assert {
        "layers_mock_server/openapi/layers.yaml",
        "layers_mock_server/openapi/control.yaml",
        "layers_mock_server/fixtures/default.yaml",
        "layers_mock/__init__.py",
        "layers_mock/pytest_plugin.py",
    } <= names
    assert not any(n.startswith(("tests/", "bench/", "fixtures/golden")) for n in names)
    entry_points = zipfile.ZipFile(base.wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    assert b"layers_mock = layers_mock.pytest_plugin" in entry_points


def test_the_base_install_serves_from_outside_the_checkout(base: WheelEnv) -> None:
    where = base.run(
        base.bin / "python", "-c", "import layers_mock_server; print(layers_mock_server.__file__)"
    )
    assert where.stdout.startswith(str(base.venv)) and str(ROOT) not in where.stdout
    missing = base.run(
        base.bin / "python",
        "-c",
        "import importlib.util as u; "
        "print([m for m in ('schemathesis', 'hypothesis', 'pytest', 'httpx') if u.find_spec(m)])",
    )
    assert missing.stdout.strip() == "[]"  # serving pulls none of the extras
    assert base.run(base.bin / "layers-mock", "--version").stdout.startswith("layers-mock ")
    server = subprocess.Popen(
        [base.bin / "layers-mock", "serve", "--port", "0", "--strict"],
        cwd=base.work,
        env=base.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("layers-mock listening on http://127.0.0.1:"), first
        url = first.split()[-1]
        created = httpx.post(
            f"{url}/v1/projects/{PROJECT}/influencers",
            headers={"Authorization": "Bearer lp_test_acmefull_Zx81Qm4TnR7vKp2W"},
            json={"gender": "female"},
            timeout=30,
        )
        assert created.status_code == 202 and created.json()["stage"] == "queued"
        # the dashboard, its templates and static files from the wheel (strict: as specified)
        page = httpx.get(f"{url}/_mock/ui", timeout=30)
        assert page.status_code == 200 and created.json()["jobId"] in page.text
        assert httpx.get(f"{url}/_mock/ui/assets/layers.css", timeout=30).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0 and "Traceback" not in stderr


def test_the_testing_api_without_its_extra_steers_and_names_the_extra(base: WheelEnv) -> None:
    script = """
from layers_mock import LayersMock
mock = LayersMock()
print(mock.advance(60).isoformat())
try:
    mock.client()
except ImportError as exc:
    print(exc)
"""
    done = base.run(base.bin / "python", "-c", script)
    assert done.stdout == (
        "2026-01-01T00:01:00+00:00\n"
        "the httpx clients of LayersMock need httpx: install the [pytest] extra "
        "(pip install '/path/to/layers-mock[pytest]')\n"
    )


def test_conform_without_its_extra_names_the_extra(base: WheelEnv) -> None:
    done = base.run(base.bin / "layers-mock", "conform", check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "the [conform] extra" in done.stderr


def test_the_testing_api_from_the_wheel(with_pytest: WheelEnv) -> None:
    env = with_pytest
    script = """
import httpx
from layers_mock import LayersMock

with LayersMock(seed=0) as mock:
    api = mock.client()
    job = api.post(f"/v1/projects/{mock.project}/influencers", json={}).json()
    mock.advance(60)
    assert api.get(f"/v1/jobs/{job['jobId']}").json()["status"] == "completed"
    with mock.serve() as served:
        answer = httpx.get(f"{served.base_url}/v1/jobs/{job['jobId']}",
                           headers={"Authorization": f"Bearer {mock.keys.full}"})
        assert answer.json()["status"] == "completed"
    mock.assert_called("GET", "/v1/jobs/*", times=2)
print("ok")
"""
    assert env.run(env.bin / "python", "-W", "error", "-c", script).stdout == "ok\n"


def test_the_pytest_plugin_from_the_wheel(with_pytest: WheelEnv) -> None:
    env = with_pytest
    shutil.copy(PARTNER_SUITE, env.work / "test_partner.py")
    done = env.run(
        env.bin / "python", "-m", "pytest", "-p", "no:cacheprovider", "-W", "error",
        "test_partner.py", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout and "warning" not in done.stdout.lower(), done.stdout


def test_conform_runs_from_the_wheel(with_conform: WheelEnv) -> None:
    env = with_conform
    done = env.run(env.bin / "layers-mock", "conform", "--examples", "2", "--quiet")
    assert " 0 failed, 0 NOT CHECKED" in done.stdout, done.stdout
