"""Reading an import body a line at a time, in the layout an export is written in.

A state of a million influencers is over half a gigabyte of JSON. Parsed whole it would sit in
memory as a tree several times that size, beside the state it replaces. An export is written
one record per line (snapshot.py), so a body that starts like one is read as it arrives: each
line becomes one row, is checked and kept, and is dropped. Any other JSON document is parsed
whole, up to MAX_WHOLE_BYTES.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..validation import dotted
from .numbers import INFINITE, beyond_double
from .restore import StateBuilder, broken
from .snapshot import ALL_TABLES

MAX_STATE_BYTES = 4 * 1024**3  # ~6 million influencers with their jobs
MAX_WHOLE_BYTES = 256 * 1024**2
HEADER = b'{"format":'
SNIFF_BYTES = 64 * 1024  # the header line of an export is far shorter than this


class StateReader:
    """Feed the body chunk by chunk, then `end()`; problems raise a 422 (ApiError)."""

    def __init__(self, builder: StateBuilder) -> None:
        self.builder = builder
        self.buffer = bytearray()
        self.size = 0
        self.mode: str | None = None  # "lines" or "whole", decided by the first line
        self.part = "header"  # lines mode: header, between, rows, done
        self.table = ""
        self.seen: set[str] = set()
        self.line = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > MAX_STATE_BYTES:
            raise broken(f"larger than {MAX_STATE_BYTES // 1024**3} GiB.")
        self.buffer += chunk
        if self.mode is None:
            newline = self.buffer.find(b"\n")
            if newline < 0 and len(self.buffer) < SNIFF_BYTES:
                return
            # No line end within the window: not an export's header line, whatever byte the
            # window ends on (a one-line document cut there can end on a comma).
            first = bytes(self.buffer[:newline]).rstrip() if newline >= 0 else b""
            self.mode = "lines" if first.startswith(HEADER) and first.endswith(b",") else "whole"
        if self.mode == "whole":
            self._whole_fits()
            return
        self._lines(final=False)

    def _whole_fits(self) -> None:
        if self.size > MAX_WHOLE_BYTES:
            raise broken(
                f"larger than {MAX_WHOLE_BYTES // 1024**2} MiB and not in the layout of an "
                "export (one record per line, as GET /_mock/state writes it)."
            )

    def end(self) -> None:
        if self.mode == "lines":
            self._lines(final=True)
            if self.part != "done":
                raise broken("ends before the closing `]}` of its last table.")
            self._all_tables()
            return
        self._whole_fits()  # also a short body that never showed its layout
        if not self.buffer or self.buffer.isspace():
            raise broken("empty.")
        try:
            document = orjson.loads(self.buffer)
        except orjson.JSONDecodeError as exc:
            raise broken(_not_json(self.buffer, exc)) from None
        self.buffer = bytearray()
        if not isinstance(document, dict):
            raise broken("must be a JSON object.")
        tables = {name: document.pop(name, None) for name in ALL_TABLES}
        self.builder.meta(document)
        for name, rows in tables.items():
            if not isinstance(rows, list):
                raise broken(f"{name}: must be a list of rows.")
            self.seen.add(name)
            for i, row in enumerate(rows):
                rows[i] = None  # each parsed row is dropped once it is a record
                self.builder.row(name, row)
        self._all_tables()

    def _all_tables(self) -> None:
        missing = [name for name in ALL_TABLES if name not in self.seen]
        if missing:
            raise broken(f"no {', '.join(missing)}.")

    def _lines(self, final: bool) -> None:
        buffer, start = self.buffer, 0
        while True:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                if final and start < len(buffer):
                    self._line(bytes(buffer[start:]).rstrip())
                    start = len(buffer)
                break
            self._line(bytes(buffer[start:newline]).rstrip())
            start = newline + 1
        del buffer[:start]

    def _line(self, line: bytes) -> None:
        self.line += 1
        if self.part == "rows" and line.startswith(b"{"):
            self.builder.row(self.table, self._json(line[:-1] if line.endswith(b",") else line))
        elif self.part == "header":
            self.builder.meta(self._json(line[:-1] + b"}"))
            self.part = "between"
        elif self.part == "between" and line.startswith(b'"') and line.endswith(b'":['):
            self.table = line[1:-3].decode("utf-8", "replace")
            if self.table not in ALL_TABLES or self.table in self.seen:
                raise broken(f"line {self.line}: unexpected table {self.table!r}.")
            self.seen.add(self.table)
            self.part = "rows"
        elif self.part == "rows" and line in (b"],", b"]}"):
            self.part = "between" if line == b"]," else "done"
        elif line or self.part != "done":
            raise broken(f"line {self.line} breaks the layout of an export.")

    def _json(self, text: bytes) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise broken(f"line {self.line}: {_not_json(text, exc)}") from None


def _not_json(raw: bytes | bytearray, exc: orjson.JSONDecodeError) -> str:
    """Why `raw` did not parse: not JSON, or a number in it out of a double's range (1e400)."""
    found = beyond_double(raw) if str(exc).startswith(INFINITE) else None
    if found is None:
        return "not valid JSON."
    where, text = found
    at = f" at {dotted(where)}" if where else ""
    return f"number out of range{at}: {text} (a number here must lie within ±1.8e308)."
