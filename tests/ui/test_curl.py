"""Copy-as-curl lines: a hostile value stays one argument; only ${LAYERS_API_KEY} is expanded."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from layers_mock_server.http.curl import base_url, curl_command

HOSTILE = [
    "/v1/jobs/x'; touch /tmp/pwned; echo '",
    '/v1/jobs/$(id)`id`"$HOME"',
    "/v1/whoami?q=a b&c=\n\\",
]


def argv_as_bash_sees_it(command: str, key: str) -> list[str]:
    """Run the line with `curl` replaced by printf, in a real bash, and read back its argv."""
    bash = shutil.which("bash")
    assert bash is not None
    script = "curl() { printf '%s\\0' \"$@\"; }\n" + command
    out = subprocess.run(
        [bash, "-c", script], capture_output=True, check=True, env={"LAYERS_API_KEY": key}
    ).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("path", HOSTILE)
def test_a_hostile_path_and_body_stay_single_arguments(path: str) -> None:
    body = '{"name": "it\'s $(not) `run`"}'
    line = curl_command("POST", "http://127.0.0.1:4010" + path, body=body)
    argv = argv_as_bash_sees_it(line, "lp_test_k")
    assert argv == [
        "-i",
        "-X",
        "POST",
        "http://127.0.0.1:4010" + path,
        "-H",
        "Authorization: Bearer lp_test_k",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
    ]


def test_a_literal_key_is_quoted_and_no_key_means_no_header() -> None:
    line = curl_command("GET", "http://h/v1/whoami", key="lp_test_$weird'key")
    assert argv_as_bash_sees_it(line, "unused")[-1] == "Authorization: Bearer lp_test_$weird'key"
    assert "Authorization" not in curl_command("GET", "http://h/v1/whoami", key=None)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1:4010", "http://127.0.0.1:4010"),
        ("mock.internal", "http://mock.internal"),
        ("[::1]:4010", "http://[::1]:4010"),
        ("evil.com/x?", "http://10.0.0.5:4010"),
        ("a b", "http://10.0.0.5:4010"),
        ("", "http://10.0.0.5:4010"),
        (None, "http://10.0.0.5:4010"),
    ],
)
def test_base_url_trusts_only_a_plain_host_header(host: str | None, expected: str) -> None:
    assert base_url(host, ("10.0.0.5", 4010)) == expected


def test_base_url_brackets_an_ipv6_socket_address() -> None:
    assert base_url(None, ("::1", 4010)) == "http://[::1]:4010"
