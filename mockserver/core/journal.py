"""The request journal: what the mock answered, newest first, bounded."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from .clock import format_ms

DEFAULT_CAPACITY = 1_000


@dataclass(frozen=True, slots=True)
class JournalEntry:
    sequence: int
    at_ms: int
    method: str
    path: str
    query: str
    status: int
    requestId: str  # noqa: N815 - the wire name, so entries serialize as they are
    apiKeyId: str | None  # noqa: N815
    operationId: str | None  # noqa: N815
    injected: str | None


def _public(entry: JournalEntry) -> dict[str, Any]:
    fields = asdict(entry)
    fields["at"] = format_ms(fields.pop("at_ms"))
    return fields


class Journal:
    __slots__ = ("_entries", "sequence")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self.sequence = 0

    def record(self, **fields: Any) -> None:
        self.sequence += 1
        self._entries.append(JournalEntry(sequence=self.sequence, **fields))

    def query(
        self,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; `path` matches as a prefix so /v1/jobs finds every job read."""
        matched = [
            e
            for e in reversed(self._entries)
            if (method is None or e.method == method.upper())
            and (path is None or e.path.startswith(path))
            and (status is None or e.status == status)
        ]
        return [_public(e) for e in matched[:limit]], len(matched)

    def clear(self) -> None:
        self._entries.clear()
        self.sequence = 0
