"""Idempotency records: a replay returns the first answer; another body is a 409.

A record is looked up by a 16-byte digest of its scope (API key, method, path, key) and holds
the answer packed into two exact-size byte strings. Bounded by count and by bytes, oldest out
first, so no load can grow it past MAX_BYTES of answers (plus RECORD_OVERHEAD per record).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import blake2b

WINDOW_MS = 24 * 3600 * 1000
MAX_RECORDS = 100_000
MAX_BYTES = 64 * 1024 * 1024
# What a record costs besides its answer bytes (measured by bench/scale.py, rounded up): the
# dict entry, the digest key, the fingerprint, the record itself and its timestamp.
RECORD_OVERHEAD = 400

Scope = tuple[str, str, str, str]  # (apiKeyId, method, path, Idempotency-Key)
Headers = list[tuple[bytes, bytes]]
Dirty = set[tuple[str, str]]


def scope_digest(scope: Scope) -> bytes:
    """The record's key; its hex form salts the ids the request mints (ids.py)."""
    return blake2b(repr(scope).encode(), digest_size=16).digest()


def body_fingerprint(canonical_body: bytes) -> bytes:
    return blake2b(canonical_body, digest_size=16).digest()


def _exact(data: bytes) -> bytes:
    """A copy of exactly len(data) bytes: orjson's output keeps a 4 KB allocation behind even
    a small answer, which made each stored record cost ~9.7 KB of RSS."""
    return bytes(memoryview(data))


def pack_headers(headers: Headers) -> bytes:
    return _exact(b"".join(name + b"\x00" + value + b"\n" for name, value in headers))


def unpack_headers(packed: bytes) -> Headers:
    pairs = []
    for line in packed.split(b"\n")[:-1]:
        name, _, value = line.partition(b"\x00")
        pairs.append((name, value))
    return pairs


@dataclass(frozen=True, slots=True)
class StoredResponse:
    api_key_id: str  # for dropping one organization's records
    operation_id: str  # whose response contract the answer follows (checked on import)
    fingerprint: bytes  # digest of the request body as canonical JSON
    status: int
    headers: bytes  # packed (pack_headers): the operation's own headers, never X-Request-Id
    body: bytes | None
    stored_ms: int

    @classmethod
    def of(  # noqa: PLR0917
        cls,
        api_key_id: str,
        operation_id: str,
        fingerprint: bytes,
        status: int,
        headers: Headers,
        body: bytes | None,
        stored_ms: int,
    ) -> StoredResponse:
        return cls(
            api_key_id,
            operation_id,
            fingerprint,
            status,
            pack_headers(headers),
            None if body is None else _exact(body),
            stored_ms,
        )

    def cost(self) -> int:
        return RECORD_OVERHEAD + len(self.headers) + len(self.body or b"")


class IdempotencyRecords:
    """Insertion-ordered; every record that leaves (expired, evicted, dropped) is named in
    `dirty` so that a durable store deletes its row too."""

    __slots__ = ("_records", "dirty", "max_bytes", "max_records", "size_bytes")

    def __init__(self, max_records: int = MAX_RECORDS, max_bytes: int = MAX_BYTES) -> None:
        self._records: dict[bytes, StoredResponse] = {}
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self.dirty: Dirty = set()  # State shares its own set here

    def lookup(self, key: bytes, now_ms: int) -> StoredResponse | None:
        record = self._records.get(key)
        if record is None:
            return None
        if now_ms - record.stored_ms >= WINDOW_MS:
            self._drop(key)
            return None
        return record

    def store(self, key: bytes, record: StoredResponse) -> None:
        self.replace(key, record)
        while len(self._records) > self.max_records or self.size_bytes > self.max_bytes:
            self._drop(next(iter(self._records)))

    def replace(self, key: bytes, record: StoredResponse) -> None:
        """Keep a record another worker stored (core/replica.py), evicting nothing: that
        worker's evictions come as deletes in its commits, and a catch-up may apply a record
        at a later value than it had then (redis_scripts.NAMED), so sizes met on the way are
        not the sandbox's."""
        if key in self._records:
            self._drop(key)
        self._records[key] = record
        self.size_bytes += record.cost()
        self.dirty.add(("idempotency", key.hex()))

    def _drop(self, key: bytes) -> None:
        self.size_bytes -= self._records.pop(key).cost()
        self.dirty.add(("idempotency", key.hex()))

    def get(self, key: bytes) -> StoredResponse | None:
        return self._records.get(key)

    def discard(self, key: bytes) -> None:
        """Forget a record another worker already dropped (core/replica.py)."""
        if key in self._records:
            self._drop(key)

    def __len__(self) -> int:
        return len(self._records)

    def items(self) -> Iterator[tuple[bytes, StoredResponse]]:
        return iter(self._records.items())

    def without_keys(self, api_key_ids: set[str]) -> IdempotencyRecords:
        """A copy without the records of these API keys (a reset of one organization)."""
        kept = IdempotencyRecords(self.max_records, self.max_bytes)
        for key, record in self._records.items():
            if record.api_key_id not in api_key_ids:
                kept._records[key] = record
                kept.size_bytes += record.cost()
        return kept
