"""The parsed contract cached by content: faster start-up, never a different contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from layers_mock_server import yaml_cache
from layers_mock_server.spec import PARTNER_SPEC, Spec
from layers_mock_server.yaml_cache import load_yaml

TEXT = "openapi: 3.1.0\npaths:\n  /x: {get: {operationId: x}}\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("LAYERS_MOCK_CACHE_DIR", str(where))
    return where


def _no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed the YAML although the cache holds it")

    monkeypatch.setattr(yaml_cache.yaml, "load", refuse)


def test_the_second_load_reads_the_cache_and_gets_the_same_document(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_yaml(TEXT)
    assert first == yaml.safe_load(TEXT)
    (entry,) = cache.glob("*.json")
    assert not list(cache.glob(".*.tmp"))  # written whole, then renamed
    _no_parsing(monkeypatch)
    assert load_yaml(TEXT) == first
    assert entry.exists()


def test_an_edited_text_never_meets_the_old_entry(cache: Path) -> None:
    load_yaml(TEXT)
    edited = TEXT.replace("operationId: x", "operationId: y")
    assert load_yaml(edited)["paths"]["/x"]["get"]["operationId"] == "y"
    assert len(list(cache.glob("*.json"))) == 2


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"key": "', b"[]", b'{"key": "other", "document": {"a": 1}}', b"\xff\xfe", b"null"],
)
def test_a_damaged_entry_is_parsed_again_and_replaced(cache: Path, damage: bytes) -> None:
    load_yaml(TEXT)
    (entry,) = cache.glob("*.json")
    entry.write_bytes(damage)
    assert load_yaml(TEXT) == yaml.safe_load(TEXT)
    assert entry.read_bytes() != damage  # a good entry took its place


def test_an_unwritable_cache_is_only_slower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LAYERS_MOCK_CACHE_DIR", str(blocker / "cache"))
    assert load_yaml(TEXT) == yaml.safe_load(TEXT)


def test_what_json_cannot_hold_exactly_is_not_cached(cache: Path) -> None:
    dated = "when: 2026-01-01\n200: ok\n"
    assert load_yaml(dated) == yaml.safe_load(dated)  # a date and an int key, as YAML reads them
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_an_empty_cache_dir_turns_it_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYERS_MOCK_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert load_yaml(TEXT) == yaml.safe_load(TEXT)
    assert list(tmp_path.iterdir()) == []


def test_the_contract_from_the_cache_is_the_contract(cache: Path) -> None:
    text = PARTNER_SPEC.read_text(encoding="utf-8")
    parsed = yaml.load(text, Loader=yaml_cache.SAFE_LOADER)
    Spec.load(PARTNER_SPEC)  # writes the entry
    assert Spec.load(PARTNER_SPEC).document == parsed  # read back from it


def test_serve_imports_neither_the_conformance_engines_nor_jinja2(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from layers_mock_server.cli import serve\n"
        "from layers_mock_server.http.app import build_app\n"
        "from layers_mock_server.settings import Settings, make_deps\n"
        "build_app(make_deps(Settings()))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'schemathesis', 'hypothesis', 'jinja2', 'sqlite3'}))\n"
    )
    env = {"LAYERS_MOCK_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]", out.stderr
