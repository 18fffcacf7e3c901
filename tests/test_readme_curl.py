"""The README's curl examples run as a reader runs them: in order, in one shell, on one server.

The tour and "Rehearsing production" are what a partner pastes first; a pasted command that
fails, or answers other than its comment says, is the first thing they see. Each command runs
in bash with real curl against a served mock on a virtual clock (`./dev serve --clock virtual`,
as the tour starts it), the README's `$B` pointing at it, and is held to its comment:

- it exits 0 with nothing on stderr (unless its comment says there is no HTTP answer);
- a comment line of JSON under it is its output, `…` standing for anything;
- an error envelope in its output is named (its code) by its comment: an unexplained 4xx in an
  example is a broken example;
- `200`, `304` in the comment of a `curl -i` is the status line; `stage "queued"`, `progress
  0.333`, `balance 20` are fields of its JSON; `etag: "…"` a header; `202 202 402` (or twenty
  202s then a 429, said shorter) the `%{http_code}`s it prints;
- a retry whose comment says "verbatim" prints what the same command printed first.

Lines that start the server (`./dev serve …`) are the reader's other terminal and are skipped.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from layers_mock_server import serving
from layers_mock_server.settings import Settings, make_app

README = Path(__file__).resolve().parents[1] / "README.md"
# From the tour's first line to the end of the per-organization clocks (Redis and cluster
# commands need a redis-server of the reader's; tests/redis runs those).
SECTIONS = (("## A five-minute tour", "## Use it in your tests"),
            ("## Rehearsing production", "### A shared sandbox on Redis"))  # fmt: skip
README_BASE, OTHER_MOCK = "http://127.0.0.1:4010", "http://127.0.0.1:4011"


@dataclass
class Command:
    text: str  # as pasted (continuation lines joined)
    comment: str  # its inline comment and the comment lines under it, joined
    output: str  # the comment lines under it that are its output (JSON), or ""


def commands() -> list[Command]:
    text = README.read_text(encoding="utf-8")
    found: list[Command] = []
    for start, end in SECTIONS:
        section = text[text.index(start) : text.index(end)]
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL):
            found.extend(parse(block))
    return found


def parse(block: str) -> Iterator[Command]:
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.startswith("#") or line.startswith("./dev "):
            continue
        while line.endswith("\\"):
            line = line[:-1] + lines[i].strip()
            i += 1
        command, *inline = re.split(r"\s+# ", line, maxsplit=1)
        below = []
        while i < len(lines) and lines[i].startswith("#"):
            below.append(lines[i][1:].strip())
            i += 1
        output = "".join(below) if below and below[0].startswith("{") else ""
        yield Command(command.strip(), " ".join([*inline, *below]).strip(), output)


def test_the_examples_are_found() -> None:
    found = commands()
    assert len(found) > 40, [c.text for c in found]
    assert sum(bool(c.output) for c in found) >= 7


def test_every_curl_example_answers_what_its_comment_says(tmp_path: Path) -> None:
    examples = commands()
    settings = Settings(clock="virtual", strict=True)
    with (
        serving.running(make_app(settings)) as (host, port),
        serving.running(make_app(settings)) as (other_host, other_port),
    ):
        script = [f"cd {tmp_path}"]
        for n, example in enumerate(examples):
            command = example.text.replace(README_BASE, f"http://{host}:{port}")
            command = command.replace(OTHER_MOCK, f"http://{other_host}:{other_port}")
            script.append(f"{{ {command}\n}} >{n}.out 2>{n}.err; echo $? >{n}.rc")
        subprocess.run(["bash", "-c", "\n".join(script)], check=True, timeout=120)
    problems, first = [], {}
    for n, example in enumerate(examples):
        out = (tmp_path / f"{n}.out").read_bytes().decode()  # as sent: CRLF in `curl -i`
        err = (tmp_path / f"{n}.err").read_bytes().decode()
        rc = int((tmp_path / f"{n}.rc").read_text())
        earlier = first.setdefault(example.text, out)
        for problem in judge(example, out, err, rc, earlier):
            problems.append(f"{example.text}\n  {problem}\n  output: {out[:600]}")
    assert not problems, "\n".join(problems)


def judge(example: Command, out: str, err: str, rc: int, earlier: str) -> Iterator[str]:
    """`earlier`: what the same command printed the first time (a retry's comment says
    "verbatim")."""
    comment = example.comment
    if "verbatim" in comment and out != earlier:
        yield f"not the first answer verbatim: {earlier}"
    if "no HTTP answer" not in comment and (rc != 0 or err):
        yield f"exit {rc}: {err.strip()}"
    if example.output:
        pattern = ".*?".join(re.escape(part) for part in example.output.split("…"))
        if not re.fullmatch(pattern, out.strip(), flags=re.DOTALL):
            yield f"the README shows: {example.output}"
    envelope = re.match(r'\{"error":\{"code":"(\w+)"', out.strip())
    if envelope and envelope[1] not in comment:
        yield f"answered {envelope[1]}, which its comment does not say"
    status = re.match(r"(\d{3})\b", comment)
    if " -i " in example.text and status and not out.startswith(f"HTTP/1.1 {status[1]} "):
        yield f"status line {out.splitlines()[0]!r}, the comment says {status[1]}"
    if (codes := status_codes(comment)) and out.split() != codes:
        yield f"printed {out.split()}, the comment says {codes}"
    body = out.rsplit("\r\n\r\n", maxsplit=1)[-1].strip()
    fields = first_json(body)
    for name, value in re.findall(r'\b(\w+) ("[^"]+"|\d+(?:\.\d+)?)(?=[,;)]|$)', comment):
        if name in fields and fields[name] != json.loads(value):
            yield f"{name} is {fields[name]!r}, the comment says {value}"
    for name, value in re.findall(r'\b([\w-]+): ("[^"]+")', comment):
        if f"\n{name}: " in out.lower() and f"\n{name}: {value.lower()}\r" not in out.lower():
            yield f"header {name} is not {value}"


def status_codes(comment: str) -> list[str]:
    """`202 202 402: …` lists the codes a loop prints; "202 times 20, then 429" says it shorter."""
    if listed := re.match(r"((?:\d{3} )*\d{3})(?::|$)", comment):
        return listed[1].split()
    if repeated := re.match(r"(\d{3}) \N{MULTIPLICATION SIGN} (\d+), then (\d{3})", comment):
        return [repeated[1]] * int(repeated[2]) + [repeated[3]]
    return []


def first_json(body: str) -> dict[str, object]:
    """The first JSON object a command printed (`curl …; curl …` prints two in a row)."""
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
