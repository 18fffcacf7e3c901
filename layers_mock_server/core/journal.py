"""The request journal: what the mock answered, newest first, bounded by entries and by bytes.

Every partner request leaves one entry (method, path, status, key id, operation, what was
injected). With `bodies=True` (the testing API turns it on; `serve --journal-bodies`) an entry
also keeps the request's and the response's headers and bodies, so a test can assert on what
its client really sent. Headers are kept as the objects already in hand, bodies as right-sized
copies; keys are redacted when the journal is read, so what it returns never holds a secret.

The bound, documented in openapi/control.yaml, is each organization's own (issue 12 point 4: a
tenant's journal is evicted by its own traffic only, never by another organization's): every
organization (and the requests of no organization, no key or an unknown one, as one more)
keeps at most `capacity` entries (1,000) and at most `max_bytes` (4 MiB) of accounted bytes:
each entry's path, query, header names and values and bodies, plus a fixed allowance per entry
and per header for the objects that hold them. A body longer than MAX_BODY_BYTES (16 KiB) is
kept cut to that length and marked `truncated`. The oldest entries of a share go first. Past
`total_bytes` (64 full shares, 256 MiB) over every organization, which only many organizations
each filling its share reach, the fullest shares are cut to a common level (`_shed`): a quiet
organization keeps its entries, the busiest lose their oldest; no share loses its newest entry
to the cut (so every organization keeps at least its last request, and the total holds but for
those, one an organization). The operator's view is the union,
newest first, within one share's bound (the newest 1,000 entries, 4 MiB). Measured with
tracemalloc (1,000 creates in-process, bodies on), the accounted bytes were 2.9 MB where the
journal held 2.4 MB (0.43 MB without bodies, where 460 KB were accounted): the bound errs on
the safe side.
"""

from __future__ import annotations

import heapq
import re
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from .clock import format_ms

DEFAULT_CAPACITY = 1_000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
# Over every organization's share: what only many organizations, each filling its own, reach.
DEFAULT_TOTAL_BYTES = 64 * DEFAULT_MAX_BYTES
MAX_BODY_BYTES = 16 * 1024
# Allowances for the Python objects around the strings (tuple, ints, request id; a header's
# tuple and two bytes objects), so that the byte bound tracks memory, not just text.
ENTRY_OVERHEAD = 400
HEADER_OVERHEAD = 120

RawHeaders = Sequence[tuple[bytes, bytes]]
# (request headers, request body, response headers or None if nothing was sent, response body)
Exchange = tuple[RawHeaders, bytes, RawHeaders | None, bytes | None]
# A shared store's group commit that failed: (request id, the response headers a request of
# the group would have had) -> (the headers and body its client got instead; http/shared.py)
Failed = Callable[[str, RawHeaders], tuple[list[tuple[bytes, bytes]], bytes]]
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "cookie"})
# lp_live_<id>_<secret>: the id may stay (it names the key), the secret never leaves. Whatever
# follows the first `<id>_` is masked, `_` and `-` included: a key shaped lp_test_a_b_c shows
# lp_test_a_***, never a part of its secret.
KEY_SECRET = re.compile(r"\b(lp_(?:live|test)_[A-Za-z0-9]+_)[A-Za-z0-9_-]+")
# What a secret header's token may show: a well-formed key's `lp_<env>_<id>_` prefix, nothing else.
WELL_FORMED_KEY = re.compile(r"(lp_(?:live|test)_[A-Za-z0-9]+_)[A-Za-z0-9]+")


def redact(text: str) -> str:
    """Mask the secret part of every Layers-style key in `text`."""
    return KEY_SECRET.sub(r"\1***", text)


def _redact_header(name: str, value: str) -> str:
    if name not in SECRET_HEADERS:
        return redact(value)
    scheme, _, token = value.partition(" ")
    if not token:
        return "***"
    key = WELL_FORMED_KEY.fullmatch(token)
    shown = key.group(1) + "***" if key else "***"
    return f"{scheme} {shown}" if scheme.isascii() and scheme.isalpha() else "***"


@dataclass(frozen=True, slots=True)
class Message:
    """One side of an exchange as recorded: headers and a body that may have been cut."""

    headers: RawHeaders
    body: bytes
    truncated: bool

    def public(self) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.headers:
            name = raw_name.decode("latin-1").lower()
            value = _redact_header(name, raw_value.decode("latin-1"))
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return {
            "headers": headers,
            "body": redact(self.body.decode("utf-8", "replace")),
            "truncated": self.truncated,
        }


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
    request: tuple[Any, ...] | None = None  # Message fields; None when bodies are not kept
    response: tuple[Any, ...] | None = None  # None also when nothing was sent (a drop)
    size: int = 0  # accounted bytes
    # Where the answer stands against resets: at least a reset's `mark` if it was answered
    # after that reset, below it if before (Journal.position).
    position: int = 0
    # The organization of the key that sent it, and its number among that organization's
    # entries: what a tenant reads as `sequence` (Journal.query `org`), so that it counts no
    # other organization's requests.
    org: str | None = None
    orgSequence: int = 0  # the wire-style name, as requestId


FIELDS = tuple(JournalEntry.__dataclass_fields__)
SIZE = FIELDS.index("size")  # where a stored tuple keeps its accounted bytes ...
POSITION = FIELDS.index("position")  # ... and its position
ORG = FIELDS.index("org")  # ... its organization, and its number in it


def _public(entry: JournalEntry, local: bool = False) -> dict[str, Any]:
    """`local`: numbered as its organization's tenant sees it."""
    fields: dict[str, Any] = {
        "sequence": entry.orgSequence if local else entry.sequence,
        "at": format_ms(entry.at_ms),
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "status": entry.status,
        "requestId": entry.requestId,
        "apiKeyId": entry.apiKeyId,
        "operationId": entry.operationId,
        "injected": entry.injected,
    }
    if entry.request is not None:
        fields["request"] = Message(*entry.request).public()
        fields["response"] = Message(*entry.response).public() if entry.response else None
    return fields


def _message(headers: RawHeaders, body: bytes | None) -> tuple[tuple[Any, ...], int]:
    """(headers, body, truncated) as a plain tuple (a Message only when read), and its size."""
    body = body or b""
    # A copy, sized to fit: the bytes orjson hands over keep its 4 KiB buffer (tracemalloc
    # saw 4 KiB held per 300-byte job envelope), which would make the byte bound a fiction.
    kept = memoryview(body)[:MAX_BODY_BYTES].tobytes()
    size = len(kept) + HEADER_OVERHEAD * len(headers) + sum(map(len, chain.from_iterable(headers)))
    return (headers, kept, len(body) > MAX_BODY_BYTES), size


def reanswered(
    entry: tuple[Any, ...] | JournalEntry, status: int, headers: RawHeaders, body: bytes
) -> tuple[Any, ...]:
    """The entry with the answer its client got instead of the one the request made (a shared
    store's group commit that failed turns each answer into a 503), its size kept exact for
    the byte bound; the response is replaced only where bodies are kept."""
    found = list(entry) if isinstance(entry, tuple) else [getattr(entry, f) for f in FIELDS]
    found[5] = status
    if found[11] is not None:
        before = _message(found[11][0], found[11][1])[1]  # the kept body measures as before
        found[11], size = _message(headers, body)
        found[SIZE] += size - before
    return tuple(found)


class Share:
    """One organization's entries, oldest first, and their accounted bytes."""

    __slots__ = ("bytes", "entries")

    def __init__(self) -> None:
        self.entries: deque[tuple[Any, ...] | JournalEntry] = deque()
        self.bytes = 0


class Journal:
    """Entries are kept as plain tuples (cheap to record on every request) in JournalEntry's
    field order, and become JournalEntry objects only when someone reads the journal.

    Each entry carries a position, and a reset hands out a mark (`mark`): an answer given
    after the reset has a position of at least its mark, one given before it a lower one.
    `sequence` cannot say that on a shared store, where entries reach the journal in the
    order they reach Redis, not the order they were answered in (stores/redis_journal.py).
    In one process the position counts the resets; it never goes back, not even when a
    reset clears the journal and `sequence` starts again.

    Two number spaces (issue 12 point 4: a tenant learns nothing of another organization).
    The operator's are the server's: `sequence` over every entry, a mark per reset of any
    kind. A tenant's are its organization's own: `sequence` over its entries (`org_sequences`),
    and its marks 1, 2, 3 for its own resets (`org_marks`: the server mark each of them was,
    which is what its `after` compares with). Its marks outlive a global reset, as the
    server's do; its `sequence` starts again with that reset, as the server's does."""

    __slots__ = (
        *("_count", "_last", "_shares", "bodies", "bytes", "capacity", "keep_mark", "max_bytes"),
        *("keep_org_mark", "org_marks", "org_sequences", "resets", "sequence", "total_bytes"),
        "_newest_bytes",
    )

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        bodies: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        resets: int = 0,
        keep_mark: Callable[[int], None] | None = None,
        org_marks: dict[str, list[int]] | None = None,
        keep_org_mark: Callable[[str, int, int], None] | None = None,
        total_bytes: int = DEFAULT_TOTAL_BYTES,
    ) -> None:
        """`resets`: the marks handed out before (a state file's: a restarted server goes on
        from there); `keep_mark` writes each new one there before it is handed out. Likewise
        `org_marks` and `keep_org_mark` (organization, its mark, the server's) for tenants."""
        # each organization's share (None: the requests of no organization's key)
        self._shares: dict[str | None, Share] = {}
        self._count = 0  # entries kept, over every share
        self._last: tuple[Any, ...] | JournalEntry | None = None
        self.capacity = capacity  # entries a share keeps at most ...
        self.max_bytes = max_bytes  # ... and bytes
        self.total_bytes = total_bytes
        self.bodies = bodies
        self.sequence = 0
        self.bytes = 0  # accounted bytes of the entries kept
        self._newest_bytes = 0  # ... and of each share's newest (`_shed` never cuts those)
        self.resets = resets  # the marks handed out: the position of an answer given now
        self.keep_mark = keep_mark
        self.org_sequences: dict[str, int] = {}  # the last `sequence` of each organization
        self.org_marks: dict[str, list[int]] = org_marks if org_marks is not None else {}
        self.keep_org_mark = keep_org_mark

    def __len__(self) -> int:
        return self._count

    def record(self, **fields: Any) -> None:
        self.sequence += 1
        fields.setdefault("position", self.position())
        org = fields.get("org")
        if org is not None:
            fields["orgSequence"] = self._next_in(org)
        self._keep(JournalEntry(sequence=self.sequence, **fields))

    def _next_in(self, org: str) -> int:
        n = self.org_sequences.get(org, 0) + 1
        self.org_sequences[org] = n
        return n

    def position(self) -> int:
        """The position of an answer given now (see the class docstring)."""
        return self.resets

    def mark(self) -> int:
        """Called just before a reset: the mark of that reset, the least position of every
        answer given after it (and more than that of any given before). Kept first where
        the state is kept (StoreUnavailable: no mark, no reset)."""
        mark = self.resets + 1
        if self.keep_mark is not None:
            self.keep_mark(mark)
        self.resets = mark
        return mark

    def latest_mark(self) -> int:
        """The latest mark a reset handed out (0: none yet)."""
        return self.resets

    def org_mark(self, org: str) -> int:
        """Called just before a tenant's reset of its organization, instead of `mark`: the
        server's mark (the operator's `after` keeps working across it), and the tenant's,
        the count of its own resets, which is what it is answered."""
        server = self.mark()
        marks = [*self.marks_of(org), server]
        if self.keep_org_mark is not None:
            self.keep_org_mark(org, len(marks), server)
        self.org_marks[org] = marks
        return len(marks)

    def marks_of(self, org: str) -> list[int]:
        """The server's mark of each of the organization's own resets, in order."""
        return self.org_marks.get(org, [])

    async def fetch_marks(self, org: str) -> None:
        """Before a tenant's reset or read of the journal: marks kept elsewhere are read here
        (stores/redis_journal.py); these are all here."""

    def handed_out(self, mark: int) -> bool:
        """Whether a reset of this journal answered `mark` (or 0, before any reset): a mark
        from before a restart of a server that kept nothing names no reset of this one."""
        return mark <= self.resets

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
        exchange: Exchange | None = None,
        position: int | None = None,
        org: str | None = None,
    ) -> None:
        """`record` with positional fields: the hot path, one tuple per request.

        `exchange` is (request headers, request body, response headers, response body), the
        objects the pipeline already holds; it is only looked at when bodies are kept, and
        response headers of None mean nothing was sent. `position`: `position()` as it was
        when the answer was made (by default, now), taken before sending it, as the copy of
        a shared store may move on while an answer is being sent. `org`: the organization of
        the key (None without one), which numbers the entry among its own."""
        self.sequence += 1
        size = ENTRY_OVERHEAD + len(path) + len(query)
        request = response = None
        if self.bodies and exchange is not None:
            request, request_size = _message(exchange[0], exchange[1])
            size += request_size
            if exchange[2] is not None:
                response, response_size = _message(exchange[2], exchange[3])
                size += response_size
        self._keep(
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
                request,
                response,
                size,
                self.position() if position is None else position,
                org,
                0 if org is None else self._next_in(org),
            )
        )

    def _keep(self, entry: tuple[Any, ...] | JournalEntry) -> None:
        if isinstance(entry, tuple):
            org, size = entry[ORG], entry[SIZE]
        else:
            org, size = entry.org, entry.size
        share = self._shares.get(org)
        if share is None:
            share = self._shares[org] = Share()
        entries = share.entries
        if entries:
            self._newest_bytes -= _size(entries[-1])
        self._newest_bytes += size
        entries.append(entry)
        share.bytes += size
        self.bytes += size
        self._count += 1
        self._last = entry
        while len(entries) > self.capacity or (share.bytes > self.max_bytes and len(entries) > 1):
            self._drop(share)
        if self.bytes > self.total_bytes and self.bytes - self._newest_bytes > slack(
            self.total_bytes
        ):
            self._shed()

    def _drop(self, share: Share) -> None:
        oldest = share.entries.popleft()
        size = oldest[SIZE] if isinstance(oldest, tuple) else oldest.size
        share.bytes -= size
        self.bytes -= size
        self._count -= 1

    def _shed(self) -> None:
        """Over `total_bytes`: the fullest shares are cut, oldest first, to the one level that
        brings the total to 7/8 of the bound (the slack spares a cut a request; the shares
        below the level keep everything). Only many organizations each filling much of its
        share get here. A share's newest entry is never cut, nor counted against the level
        (`_newest_bytes`): a quiet organization keeps its last request, however many others
        there are (10,000 tenants each with one large entry once had the level fall below one
        entry, and every quiet tenant read an empty journal). So the total holds but for the
        newest entries, one an organization; where those alone come near it, the cut runs
        only once what it can cut reaches the slack (not at every entry, each run sorting
        every share)."""
        goal = max(0, self.total_bytes - slack(self.total_bytes) - self._newest_bytes)
        level = common_level([_cuttable(share) for share in self._shares.values()], goal)
        for share in self._shares.values():
            while len(share.entries) > 1 and _cuttable(share) > level:
                self._drop(share)

    def last(self) -> JournalEntry | None:
        """The newest entry (the request log names what was injected into it)."""
        entry = self._last
        if entry is None:
            return None
        return entry if isinstance(entry, JournalEntry) else JournalEntry(*entry)

    def _newest(self, org: str | None, shared: bool) -> Iterator[tuple[Any, ...] | JournalEntry]:
        """Newest first: the organization's own entries, or (`shared`: the operator's view)
        every share's, merged by `sequence`, the newest `capacity` within `max_bytes`."""
        if not shared:
            share = self._shares.get(org)
            return reversed(share.entries) if share is not None else iter(())
        merged = heapq.merge(
            *(reversed(s.entries) for s in self._shares.values()), key=_sequence, reverse=True
        )
        return _bounded(merged, self.capacity, self.max_bytes)

    async def fetch(self, org: str | None = None) -> None:
        """Before a request reads the journal (`query`; `org`: a tenant's, of its
        organization): a journal kept elsewhere is read here, where the request may wait for
        it (stores/redis_journal.py); this one holds it all."""

    def query(
        self,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        limit: int = 100,
        *,
        api_key_ids: Collection[str] | None = None,
        after: int | None = None,
        local: bool = False,
        org: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; `path` matches as a prefix so /v1/jobs finds every job read.
        `api_key_ids`: only the requests of these keys (a tenant reads its own organization's).
        `after`: a reset's mark: only the requests answered after that reset (a server mark:
        a tenant's is translated first, `marks_of`). `local`: numbered as a tenant sees them;
        an entry with no such number (one a version before them appended to a shared
        journal) is not shown to a tenant, as a number it has not could not be shown.
        `org`: the organization whose own share is read (a tenant's); without it, the
        operator's view of every share (`_newest`).

        Filters on the stored tuples and builds only the entries it returns: building every
        entry per read cost ~4-6 ms at 1,000 entries, for a page of 100 or fewer."""
        want = method.upper() if method is not None else None
        found: list[dict[str, Any]] = []
        matched = 0
        for raw in self._newest(org, org is None):
            # (sequence, at_ms, method, path, query, status, requestId, apiKeyId, ...):
            # JournalEntry's field order
            fields = (
                raw
                if isinstance(raw, tuple)
                else (0, 0, raw.method, raw.path, "", raw.status, "", raw.apiKeyId)
            )
            if (
                (want is not None and fields[2] != want)
                or (path is not None and not fields[3].startswith(path))
                or (status is not None and fields[5] != status)
                or (api_key_ids is not None and fields[7] not in api_key_ids)
                or (after is not None and _position(raw) < after)
                or (local and _org_sequence(raw) == 0)
            ):
                continue
            matched += 1
            if len(found) < limit:
                entry = raw if isinstance(raw, JournalEntry) else JournalEntry(*raw)
                found.append(_public(entry, local))
        return found, matched

    def imported(self, orgs: Collection[str]) -> None:
        """Before an import's commit, with the organizations it brings (which keep their
        entries: an import keeps the journal). A journal kept elsewhere drops what it holds
        for them unseen (stores/redis_journal.py); this one holds nothing unseen."""

    def clear(self, orgs: Collection[str] = ()) -> None:
        """A global reset's (after its `mark`): every entry goes, and `sequence` starts again.
        `orgs`: the organizations the server knew (a journal kept elsewhere drops theirs by
        name: stores/redis_journal.py); this one holds every share here."""
        self._shares.clear()
        self._count = 0
        self._last = None
        self.sequence = 0
        self.org_sequences.clear()
        self.bytes = 0
        self._newest_bytes = 0


def _sequence(entry: tuple[Any, ...] | JournalEntry) -> int:
    return entry[0] if isinstance(entry, tuple) else entry.sequence


def _bounded(
    entries: Iterable[tuple[Any, ...] | JournalEntry], capacity: int, max_bytes: int
) -> Iterator[tuple[Any, ...] | JournalEntry]:
    """The first `capacity` entries whose bytes stay within `max_bytes` (the first always)."""
    size = 0
    for n, entry in enumerate(entries):
        size += entry[SIZE] if isinstance(entry, tuple) else entry.size
        if n >= capacity or (n and size > max_bytes):
            return
        yield entry


def slack(total_bytes: int) -> int:
    """What the server-wide cut leaves free under `total_bytes` (1/8 of it), so that it does
    not run again at the next entry."""
    return total_bytes - total_bytes * 7 // 8


def common_level(sizes: list[int], goal: int) -> int:
    """The one level L to cut every share's `sizes` down to (those below keep all) so that
    sum(min(size, L)) <= goal: the server-wide cut's (Journal._shed, and on Redis
    stores/redis_total.py)."""
    sizes = sorted(sizes, reverse=True)
    rest, level = sum(sizes), 0
    for cut in range(1, len(sizes) + 1):
        rest -= sizes[cut - 1]  # what the shares below the `cut` fullest hold
        level = (goal - rest) // cut
        if level >= (sizes[cut] if cut < len(sizes) else 0):
            break
    return max(level, 0)


def _size(entry: tuple[Any, ...] | JournalEntry) -> int:
    return entry[SIZE] if isinstance(entry, tuple) else entry.size


def _cuttable(share: Share) -> int:
    """The bytes of a share the server-wide cut may take: all but its newest entry's."""
    return share.bytes - _size(share.entries[-1]) if share.entries else 0


def _position(entry: tuple[Any, ...] | JournalEntry) -> int:
    return entry[POSITION] if isinstance(entry, tuple) else entry.position


def _org_sequence(entry: tuple[Any, ...] | JournalEntry) -> int:
    return entry[ORG + 1] if isinstance(entry, tuple) else entry.orgSequence
