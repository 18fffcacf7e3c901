"""The hostile-input corpus (tests/hostile/): one case per file, replayed over real HTTP.

Each case is a few requests with the status each must get (and, where it matters, fields of
the answer). After every case the same probe runs: health, clock, whoami, a create, its job,
the list, the journal and an export must all still answer, in strict mode. A case that leaves
the mock unable to serve fails here even if each of its own answers looked fine: that is the
class of bug (issue 9: D1, D4, D7, D12) the corpus exists for.

Case file (YAML):

    # why the case exists (which defect it reproduces)
    steps:
      - send: POST /_mock/reset        # METHOD PATH; `{name}` is a value saved earlier
        json: {seed: 1.0}              # or `body:` (raw text), or `export_edits:` (below)
        headers: {Prefer: fault=drop}  # Authorization is the full fixture key unless given
        expect: 200                    # a status, or `drop` (the connection closes unanswered)
        expect_json: {seed: 1}         # dotted paths into the answer; `#` is a length
        save: {inf: influencerId}      # name -> dotted path, for later steps
      - raw: "OPTIONS * HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"   # bytes as sent, for what httpx cannot
        expect: 404

`export_edits` sends GET /_mock/state with the edits applied: `{"jobs.0.started_ms": "x"}`,
a value of `$delete` removes the field.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from support import FULL, PROJECT, SEED, auth, running_server

from layers_mock_server.core.clock import Clock
from layers_mock_server.core.fixtures import load_fixtures
from layers_mock_server.core.simulator import Simulator
from layers_mock_server.deps import Deps
from layers_mock_server.http.app import build_app

CORPUS = Path(__file__).resolve().parents[1] / "hostile"
CASES = sorted(CORPUS.glob("*.yaml"))
SAVED = re.compile(r"\{(\w+)\}")  # `{name}`: a value an earlier step saved
CLIENT_TIMEOUT_S = 60  # a case that hangs the server (ReDoS) fails on this, not on a clock


class Switch:
    """One uvicorn server for the whole corpus; each case gets a fresh mock behind it."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def fresh(self) -> Deps:
        deps = Deps(sim=Simulator(load_fixtures(), Clock("virtual"), SEED), strict=True)
        self.app = build_app(deps)
        return deps


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Switch]]:
    switch = Switch()
    with running_server(switch) as url:
        yield url, switch


def dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if part == "#":
            value = len(value)
        elif isinstance(value, list):
            value = value[int(part)]
        else:
            value = value[part]
    return value


def edited(document: Any, edits: dict[str, Any]) -> Any:
    for path, value in edits.items():
        *parents, last = path.split(".")
        target = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        key: Any = int(last) if isinstance(target, list) else last
        if value == "$delete":
            del target[key]
        else:
            target[key] = value
    return document


def fill(value: Any, saved: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return SAVED.sub(lambda m: str(saved.get(m[1], m[0])), value)
    if isinstance(value, dict):
        return {k: fill(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, saved) for v in value]
    return value


def send_raw(url: str, raw: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=CLIENT_TIMEOUT_S) as conn:
        conn.sendall(raw.encode("latin-1"))
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head.split()[1]), rest


def run_step(client: httpx.Client, url: str, step: dict[str, Any], saved: dict[str, Any]) -> None:
    where = step.get("send") or step.get("raw")
    if "raw" in step:
        status, body = send_raw(url, step["raw"])
        assert status == step["expect"], (where, status, body)
        if status >= 400:
            assert orjson.loads(body)["error"]["code"], body  # in the envelope, never text/plain
        return
    method, path = fill(step["send"], saved).split(" ", 1)
    headers = {"Authorization": f"Bearer {FULL}", **fill(step.get("headers", {}), saved)}
    content: bytes | None = None
    if "json" in step:
        content = orjson.dumps(fill(step["json"], saved))
    elif "body" in step:
        content = fill(step["body"], saved).encode()
    elif "export_edits" in step:
        document = client.get("/_mock/state").json()
        content = orjson.dumps(edited(document, fill(step["export_edits"], saved)))
    if content is not None:
        headers.setdefault("Content-Type", "application/json")
    if step["expect"] == "drop":
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.request(method, path, headers=headers, content=content)
        return
    answer = client.request(method, path, headers=headers, content=content)
    assert answer.status_code == step["expect"], (where, answer.status_code, answer.text[:2000])
    if method == "HEAD":
        assert answer.content == b""
        return
    document = answer.json()
    if answer.status_code >= 400:
        assert document["error"]["requestId"] == answer.headers["x-request-id"]
    for path_, value in fill(step.get("expect_json", {}), saved).items():
        assert dig(document, path_) == value, (where, path_, document)
    for path_, value in fill(step.get("differs", {}), saved).items():
        assert dig(document, path_) != value, (where, path_, document)
    for name, path_ in step.get("save", {}).items():
        saved[name] = dig(document, path_)


def probe(client: httpx.Client) -> None:
    """Whatever the case sent, the mock still serves every route, in strict mode."""
    for path in ("/_mock/health", "/_mock/clock", "/_mock/rules", "/_mock/seed"):
        assert client.get(path).status_code == 200, path
    client.delete("/_mock/rules")  # rules the case left would make the probe's answers its own
    assert client.get("/v1/whoami", headers=auth()).status_code == 200
    created = client.post(f"/v1/projects/{PROJECT}/influencers", headers=auth(), json={})
    assert created.status_code == 202, created.text
    assert client.get(created.headers["location"], headers=auth()).status_code == 200
    listing = client.get(f"/v1/projects/{PROJECT}/influencers", headers=auth())
    assert created.json()["influencerId"] in {i["influencerId"] for i in listing.json()["items"]}
    assert client.get("/_mock/requests").status_code == 200
    exported = client.get("/_mock/state")
    assert exported.status_code == 200
    assert (
        client.put(
            "/_mock/state", content=exported.content, headers={"Content-Type": "application/json"}
        ).status_code
        == 200
    )
    assert client.post("/_mock/clock/advance", json={"seconds": 60}).status_code == 200
    assert client.get(created.headers["location"], headers=auth()).json()["status"] == "completed"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_hostile_case(case: Path, server: tuple[str, Switch]) -> None:
    url, switch = server
    spec = yaml.safe_load(case.read_text(encoding="utf-8"))
    switch.fresh()
    saved: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT_S) as client:
        for step in spec["steps"]:
            run_step(client, url, step, saved)
        probe(client)


def test_the_corpus_has_a_case_for_each_defect_it_names() -> None:
    named = {line.split()[1].rstrip(":") for c in CASES for line in c.read_text().splitlines()[:1]}
    assert {"D1", "D2", "D4", "D6", "D7", "D12", "D13", "D16"} <= named
