"""Same seed, fixtures and requests ⇒ byte-identical responses, guarded by a stored transcript.

Regenerate after an intended change of behaviour with:

    UPDATE_GOLDEN=1 ./dev test tests/test_golden.py

and review the diff of fixtures/golden/session.txt like any other change of the contract.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from support import GLOBEX_PROJECT, NO_INFLUENCERS, PROJECT, auth, make_mock

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "session.txt"
CREATE = f"/v1/projects/{PROJECT}/influencers"

# (method, path, headers, json body or None, clock advance in seconds before the request)
SCRIPT: list[tuple[str, str, dict[str, str], object, float]] = [
    ("GET", "/v1/whoami", auth(), None, 0),
    (
        "POST",
        CREATE,
        auth(**{"Idempotency-Key": "golden-1"}),
        {"gender": "female", "prompt": "barista energy"},
        0,
    ),
    ("POST", CREATE, auth(), {"ageRange": "senior"}, 1),
    ("POST", CREATE, auth(Prefer="outcome=failed; stage=training"), {}, 0),
    ("GET", "/v1/jobs/{job1}", auth(), None, 2),
    ("GET", "/v1/influencers/{inf1}", auth(), None, 14),
    (
        "POST",
        CREATE,
        auth(**{"Idempotency-Key": "golden-1"}),
        {"gender": "female", "prompt": "barista energy"},
        0,
    ),
    ("POST", CREATE, auth(**{"Idempotency-Key": "golden-1"}), {"gender": "male"}, 0),
    ("POST", CREATE, auth(), {"name": "Ava", "language": "en"}, 0),
    ("POST", CREATE, auth(NO_INFLUENCERS), {}, 0),
    ("POST", f"/v1/projects/{GLOBEX_PROJECT}/influencers", auth(), {}, 0),
    ("POST", "/v1/jobs/{job2}/cancel", auth(), None, 5),
    ("GET", "/v1/jobs/{job3}", auth(), None, 40),
    ("GET", "/v1/jobs/{job1}", auth(), None, 10),
    ("GET", "/v1/influencers/{inf1}", auth(), None, 0),
    ("GET", CREATE + "?limit=2", auth(), None, 0),
    ("PATCH", "/v1/influencers/{inf1}", auth(), {"brandVoice": "witty"}, 0),
    ("DELETE", "/v1/influencers/{inf3}", auth(), None, 0),
    ("GET", CREATE, auth(), None, 0),
]


def run_session() -> str:
    mock = make_mock(seed=20260101)
    names: dict[str, str] = {}
    lines: list[str] = []
    with mock.client:
        for method, path, headers, body, advance in SCRIPT:
            if advance:
                mock.advance(advance)
                lines.append(f"~~~ clock +{advance:g}s")
            url = path.format(**names)
            response = mock.client.request(method, url, headers=headers, json=body)
            lines.append(f">>> {method} {url}")
            lines += [f"{k}: {v}" for k, v in headers.items() if k != "Authorization"]
            if body is not None:
                lines.append(orjson.dumps(body).decode())
            lines.append(f"<<< {response.status_code}")
            lines += [f"{k}: {v}" for k, v in response.headers.items()]
            lines.append(response.text)
            if response.status_code == 202 and "influencerId" in response.json():
                n = sum(1 for k in names if k.startswith("job")) + 1
                names.setdefault(f"job{n}", response.json()["jobId"])
                names.setdefault(f"inf{n}", response.json()["influencerId"])
    return "\n".join(lines) + "\n"


def test_session_matches_the_golden_transcript() -> None:
    transcript = run_session()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(transcript, encoding="utf-8")
    assert transcript == GOLDEN.read_text(encoding="utf-8")


def test_two_runs_are_byte_identical() -> None:
    assert run_session() == run_session()
