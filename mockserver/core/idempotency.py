"""Idempotency records: a replay returns the first answer verbatim; another body is a 409."""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_MS = 24 * 3600 * 1000
MAX_RECORDS = 100_000  # oldest first out: memory stays bounded under any load

Scope = tuple[str, str, str, str]  # (apiKeyId, method, path, Idempotency-Key)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: bytes  # the request body as canonical JSON
    status: int
    body: bytes | None
    headers: tuple[tuple[bytes, bytes], ...]  # as sent, less X-Request-Id
    stored_ms: int


class IdempotencyRecords:
    __slots__ = ("_records", "max_records")

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._records: dict[Scope, StoredResponse] = {}
        self.max_records = max_records

    def lookup(self, scope: Scope, now_ms: int) -> StoredResponse | None:
        record = self._records.get(scope)
        if record is None:
            return None
        if now_ms - record.stored_ms >= WINDOW_MS:
            del self._records[scope]
            return None
        return record

    def store(self, scope: Scope, record: StoredResponse) -> None:
        self._records.pop(scope, None)
        self._records[scope] = record
        while len(self._records) > self.max_records:
            del self._records[next(iter(self._records))]

    def __len__(self) -> int:
        return len(self._records)

    def items(self) -> list[tuple[Scope, StoredResponse]]:
        return list(self._records.items())

    def drop_keys(self, api_key_ids: set[str]) -> None:
        self._records = {s: r for s, r in self._records.items() if s[0] not in api_key_ids}

    def clear(self) -> None:
        self._records.clear()
