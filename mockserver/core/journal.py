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
    requestId: str  # the wire name, so entries serialize as they are
    apiKeyId: str | None
    operationId: str | None
    injected: str | None


def _public(entry: JournalEntry) -> dict[str, Any]:
    fields = asdict(entry)
    fields["at"] = format_ms(fields.pop("at_ms"))
    return fields


class Journal:
    """Entries are kept as plain tuples (cheap to record on every request) in JournalEntry's
    field order, and become JournalEntry objects only when someone reads the journal."""

    __slots__ = ("_entries", "sequence")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._entries: deque[tuple[Any, ...] | JournalEntry] = deque(maxlen=capacity)
        self.sequence = 0

    def record(self, **fields: Any) -> None:
        self.sequence += 1
        self._entries.append(JournalEntry(sequence=self.sequence, **fields))

    def add(  # noqa: PLR0917 - positional on purpose: one call per request
        self,
        at_ms: int,
        method: str,
        path: str,
        query: str,
        status: int,
        request_id: str,
        api_key_id: str | None,
        operation_id: str | None,
        injected: str | None,
    ) -> None:
        """`record` with positional fields: the hot path, one tuple per request."""
        self.sequence += 1
        self._entries.append(
            (
                self.sequence,
                at_ms,
                method,
                path,
                query,
                status,
                request_id,
                api_key_id,
                operation_id,
                injected,
            )
        )

    def _all(self) -> list[JournalEntry]:
        return [e if isinstance(e, JournalEntry) else JournalEntry(*e) for e in self._entries]

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
            for e in reversed(self._all())
            if (method is None or e.method == method.upper())
            and (path is None or e.path.startswith(path))
            and (status is None or e.status == status)
        ]
        return [_public(e) for e in matched[:limit]], len(matched)

    def clear(self) -> None:
        self._entries.clear()
        self.sequence = 0
