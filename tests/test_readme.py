"""The README's "Use it in your tests" examples run as written, so they cannot rot.

Blocks with test functions run as a partner's test file in a fresh pytest session, in a
process of its own (pytester's subprocess run: see tests/testing_api/test_pytest_plugin.py for
what an in-process one left behind); the others run as a script.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import PARTNER_PYTEST

README = Path(__file__).resolve().parents[1] / "README.md"


def examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Use it in your tests") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_section_shows_fixture_sleep_and_a_served_mock() -> None:
    blocks = examples()
    assert len(blocks) == 4
    joined = "\n".join(blocks)
    for shown in ("layers_mock.advance", "sleep=layers_mock.sleep", "monkeypatch.setattr(time",
                  "mock.serve()", "\"curl\"", "layers_mock.connect(url, key=key)"):  # fmt: skip
        assert shown in joined


@pytest.mark.parametrize("index", [0, 1])
def test_the_pytest_examples_pass(pytester: pytest.Pytester, index: int) -> None:
    block = examples()[index]
    pytester.makepyfile(test_readme_example=block)
    result = pytester.runpytest_subprocess(*PARTNER_PYTEST)
    result.assert_outcomes(passed=block.count("\ndef test_") + block.startswith("def test_"))


def test_the_shared_sandbox_example_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a served mock with an admin token: the example's key is a tenant there."""
    from layers_mock import LayersMock
    from layers_mock_server import serving
    from layers_mock_server.settings import Settings, make_app

    settings = Settings(clock="virtual", admin_token="operator-only", strict=True)
    with serving.running(make_app(settings)) as (host, port), LayersMock() as local:
        monkeypatch.setenv("LAYERS_SANDBOX_URL", f"http://{host}:{port}")
        monkeypatch.setenv("LAYERS_SANDBOX_KEY", local.keys.foreign or "")
        pytester.makepyfile(test_readme_example=examples()[3])
        result = pytester.runpytest_subprocess(*PARTNER_PYTEST)
    result.assert_outcomes(passed=1)


def test_the_script_example_runs(capfd: pytest.CaptureFixture[str]) -> None:
    """All it prints is its own line (capfd: curl's output, too, would land on the terminal)."""
    exec(compile(examples()[2], str(README), "exec"), {"__name__": "__readme__"})
    job_id, authorization = capfd.readouterr().out.split(maxsplit=1)
    assert job_id.startswith("job_") and authorization.strip() == "Bearer lp_test_acmefull_***"


def test_the_first_example_of_the_testing_manual_runs() -> None:
    """The manual is the module docstring of layers_mock; its first example must hold too."""
    import layers_mock

    manual = layers_mock.__doc__ or ""
    start = manual.index("says so::\n") + len("says so::\n")
    lines = []
    for line in manual[start:].splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    exec(compile("\n".join(lines), "layers_mock.__doc__", "exec"), {})


def test_every_json_body_the_readme_sends_to_the_partner_api_is_accepted() -> None:
    """The Projects example sent `"appDescription":"<100 to 1000 chars>"`: a 422 if pasted."""
    import json

    from support import FULL, auth, make_mock

    sent = re.findall(
        r"curl -s -X (POST|PATCH) \$B(/v1/[^ ]*) [^\n]*\\\n\s+-d '(\{[^']*\})'", README.read_text()
    )
    assert sent, "no partner-API body found in the README"
    for method, raw_path, body in sent:
        mock = make_mock()
        path = raw_path.replace("$P", "prj_254a4ce1-f4ca-42b1-9e36-17ca45ef3d39")
        answer = mock.client.request(method, path, json=json.loads(body), headers=auth(FULL))
        assert answer.status_code < 400, (method, path, answer.text)
