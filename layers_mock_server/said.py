"""A line to stderr as one write: the workers of a `--workers` serve share its stderr pipe.

`print(line, file=sys.stderr)` writes the line and its newline in two calls, and stderr
passes each call on at once: two workers saying something at the same moment (both waiting
for Redis at a serve's start) spliced their lines into one, then two bare newlines, so a log
reader, or a supervisor matching lines, saw one worker's line vanish. One write of the line
with its newline (well under a pipe's atomic 4 KiB) reaches the pipe whole.
"""

from __future__ import annotations

import sys
from typing import TextIO


def say(line: str, stream: TextIO | None = None) -> None:
    out = sys.stderr if stream is None else stream
    out.write(line + "\n")
    out.flush()
