"""The request journal of a sandbox on Redis: every worker's entries, a capped stream for each
organization.

Each worker records its entries as a single server does (core/journal.py), keeping none of them but
its newest (the request log's), and sends them to the sandbox's streams with its next commit or
lease to Redis (under writes, no round trip of their own), or within `FLUSH_S` (a read's catch-up
carries no read's entry unless one of another kind waits, a 503 say: under reads alone they go
together every `FLUSH_S`, not with each catch-up, where they cost Redis an append and its trim's
XRANGE every catch-up, ~a quarter of its time in the catch-up script: bench/README.md, read16): each
organization's to its own stream (`journal-org:<its id in hex>`), those of no organization (no key,
or an unknown one) to one more (`journal-org:`). A read of `/_mock/requests` on any worker sends
that worker's own first, has every other worker send its own (the flush barrier, below), then reads:
a tenant its organization's stream, the operator the newest of every stream (JOURNAL, READ_ORG,
READ_ALL). It shows what every worker answered, newest first in the order the entries reached Redis
(entries of two workers answered within a few milliseconds of each other may swap places). Each
stream keeps its organization's newest `capacity` entries (1,000), whatever the others send (issue
12 point 4: a tenant's journal is evicted by its own traffic only); the byte bound applies when the
journal is read, to each organization's entries as in one process. Every stream of the sandbox
together keeps at most the server-wide total one process keeps (256 MiB), cut by its rule: the
scripts that append count the bytes, and the worker told the total is passed cuts the fullest
streams (redis_total.py). While Redis is full it takes no entry (an append needs memory): they wait
in the worker, its newest `capacity`, and go with its first round trip Redis takes again (redis.py).
So do the entries of a round trip that failed for any reason (refused, never sent, its answer lost):
an outage loses none, and the worker's numbering of its entries has Redis append each once
(redis_outbox.py).

The entries a round trip takes along are one stream entry an organization (`JOURNAL`): what
Redis spends on the journal is one INCRBY, one HMGET and one HSET a round trip and one HINCRBY,
one HSET and one XADD an organization in it (and an XRANGE of the stream entries its XADD trims,
once its stream is full: their bytes), not commands a request (under reads, a flush carries
those of `FLUSH_S`). Versions before kept every organization's in one stream, `journal-v2`
(many entries a stream entry) or `journal` (one): those are read with the new ones, in number
order, until the journal is cleared; they number on from the same counters, so a rollback to the
version before appends to its stream and reads it as it did, and this one reads those too once
back.

A request answered in a group commit (http/shared.py) is answered only once the group's
commit returned, so its entry waits with it (`holding`): the entries of a group go with its
commit and are appended only if the commit is kept; if it fails, each is rewritten with the
503 its client got instead (`settle`) and sent with the next round trip. The journal records
what the client received. A group's entries note their organizations as they are staged
(`Staged`), so its commit declares their streams without reading the entries again.

Entries travel as JSON: headers and bodies as latin-1 text, so bytes come back exactly, and
keys are redacted when the journal is read, as in one process.

A reset and the entries answered before it: an entry reaches Redis after its answer, so one
answered just before a reset that another worker commits can reach the stream after that
reset. Each entry carries its position (first in its JSON, `_encode`): the number of the
commit its worker's copy stood at when it answered (`seen`), taken before the answer is
sent. A reset's commit is numbered past that of every copy that answered before it, and every
copy that answers after it has caught up with it (a request catches up before it is
answered), so the position tells which side of the reset an answer is on, whichever order
the entries reach Redis in:

- a global reset clears the stream in its own commit (the WRITE script), and leaves the
  number of that commit as the journal's floor: each script that appends drops an entry
  whose position is below the floor (it was answered before the reset, and the journal it
  belonged to is gone);
- an organization's reset keeps the journal, and hands out a mark (`mark`: its worker's
  position plus one, under the lease): `/_mock/requests?after=MARK` shows only the entries
  at or past it, which is how the testing API counts a tenant's requests since its reset.

An entry held with a group's commit goes in the same script as that commit, so it is never
late: it is appended as it is. An answer that was not made from a copy caught up for it (a
401 to a request without a key, which waits for no round trip; a 503 because a round trip
failed) has no order against another worker's reset that any worker could know: its
position is UNORDERED, past every floor and mark, so that no reset drops it (the answer may
have come after the reset); such an answer given just before a reset is shown after it.

The flush barrier: a read's entry leaves its worker after the answer, so a journal read on
another worker just after it (a CI test's client and its handle are two connections, which
the kernel gives to two workers of one port) would miss it (76 of 100 tries on `serve
--workers 2`). So a journal read first asks (FLUSH_ASK: `f` and a nonce, published on the
sandbox's handoff channel every worker listens on, redis_handoff.py; its answer: how many
listeners heard it, and the live workers' liveness marks) and every worker that hears the
ask sends what it holds, then its word (FLUSH_ACK: `a`, the nonce and its name) through the
same pipe or lane: Redis has its entries when the word is heard. The read waits until every
listener that heard the ask gave its word, and every live worker (redis.answering) gave it or
subscribed after the ask (a worker whose listener first subscribes, as it starts serving,
sends what it holds, then `h` and its name). Every request answered before the read was
sent was recorded in its worker's outbox as the answer was handed to the server (the step
after `send_response`, http/pipeline.py), before that worker could hear the ask: the read
sees it. Bounded by BARRIER_S: a worker that looks live but does not answer (stalled; killed,
its mark not run out; refused the channel by an ACL; its listener reconnecting) costs each
journal read that much, and its last FLUSH_S of reads may be missed. A Redis that is full
takes no entry: they wait in their workers (the word still comes), as before.

A tenant's numbers are its organization's own (core/journal.py): the script that appends an
entry numbers it among its organization's too (`journal-seq:org`, cleared with the journal),
and a tenant's reset keeps the organization's marks (the sandbox's mark of each of its
resets, `org-marks`) with its commit, read first under the lease (`fetch_marks`), so a
tenant's next mark follows its last whichever worker handed that out.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import orjson

from ..core.journal import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BYTES,
    DEFAULT_TOTAL_BYTES,
    FIELDS,
    ORG,
    POSITION,
    Failed,
    Journal,
    JournalEntry,
    reanswered,
)

if TYPE_CHECKING:
    from .redis import RedisStore

FLUSH_S = 0.01
# The longest a journal read waits for the other workers' word that they sent what they held
# (the flush barrier, module docstring): what a worker that looks live but does not answer
# (stalled, killed with its liveness mark not run out yet, unable to listen) costs it.
BARRIER_S = 0.5
# The position of an answer not made from a copy caught up for it (module docstring): past
# every floor and mark (the largest integer a JSON reader keeps exactly).
UNORDERED = 2**53 - 1
# The entries `fetch` read for the request running in this context (a task's own).
_FETCHED: contextvars.ContextVar[list[tuple[int, bytes]] | None] = contextvars.ContextVar(
    "fetched", default=None
)

CHUNK = 256  # journal entries at most in one stream entry
# An organization id JSON writes as it is (no quote, backslash or control character) and that
# does not start as `counted`'s escaped ones do.
PLAIN = re.compile(r'[^"\\\x00-\x1f~][^"\\\x00-\x1f]*')

# The Lua functions every script that appends to the journal has (redis_scripts.py's, and
# APPEND). Each organization's entries go to a stream of its own (`journal-org:<hex>`), and the
# entries of no organization (no key, or an unknown one) to one more (`journal-org:`), so that
# a stream's bound (the newest `cap` entries) is that organization's alone (issue 12 point 4:
# another organization's traffic never pushes a tenant's oldest entries out). `streams` finds
# the organization of each entry ARGV[from..] (an entry of one starts `[[position,"org"],`:
# `_encode`) and the stream of each: KEYS[base] for none, then KEYS[base + 1 ..] one an
# organization in the order they first come there, as the worker declared them
# (RedisStore._streams): every key a script touches comes in KEYS, none is built here (Redis
# Cluster routes a script, and a proxy checks it, by its declared keys:
# tests/redis/test_declared_keys.py).
#
# `journal` appends the entries ARGV[from..to]: numbered on from the sandbox's counter `s`
# (what the operator reads as `sequence`: one INCRBY a round trip), and among their
# organization's, on from its counter in the hash `orgs` (`journal-seq:org`, a field an
# organization, `~-` for none; one HINCRBY an organization a round trip). That number is the
# stream entry's ID (the last journal entry's it holds), so that MINID keeps exactly the stream
# entries that hold one of the organization's newest `cap`; a stream entry holds up to CHUNK
# journal entries: `n`, the organization's number of the first, then one field a journal entry,
# named by its sandbox number, the entry as it came (never copied). A counter that starts at 1
# (the journal was cleared, or this is the organization's first entry) drops what the stream
# held: entries from before a clearing that the reset did not name (a global reset deletes the
# streams of every organization its worker knew: SharedJournal.clear; one the server no longer
# knew, or a clearing by the version before, leaves its stream, which an import of that
# organization deletes: SharedJournal.imported); a reader reads only the stream of an
# organization the hash counts (READ_ORG, READ_ALL). A stream ahead of its
# counter (only an edited Redis) is dropped rather than refusing every append after it. The
# entries up to ARGV[checked] are late ones: those whose position (their JSON starts
# `[[position],`) is below the floor `f` (a global reset's commit, when there was one) were
# answered before that reset, and are dropped; the ones after `checked` go with the commit that
# holds their answers.
JOURNAL = f"""
-- A number as redis.call takes it, formatted here: Redis formats a Lua number argument with
-- `%.17g` (and `..` with `%.14g`), a float's formatting, ~2,000 instructions each; `%d` is
-- an integer's, a tenth of that (redis_scripts.py: what a create costs Redis).
local function int(x) return string.format('%d', x) end
-- An entry that starts with the very head the one before matched (`[[position,"org"]`: the
-- entries of a group share it) is that one's organization's, found by a plain comparison: the
-- anchored pattern, matched again, would take the same path to the same capture (a pattern
-- costs Lua's matcher ~5,000 instructions an entry, a plain find a tenth of that).
local function streams(from, base)  -- also: the last of KEYS it took
  local of, key, k = {{}}, {{['~-'] = KEYS[base]}}, base
  local head, org = nil, nil
  for i = from, #ARGV do
    local o
    if head and string.find(ARGV[i], head, 1, true) == 1 then
      o = org
    else
      head, org = string.match(ARGV[i], '^(%[%[%d+,"([^"\\]*)"%])')
      o = org or '~-'
    end
    of[i] = o
    if not key[o] then
      k = k + 1
      key[o] = KEYS[k]
    end
  end
  return of, key, k
end
local over = false  -- the journal passed its total (`held`): the worker cuts it (SHED)
-- What each organization's stream holds in bytes (the JSON of its entries), in the hash of
-- counters beside its counter: field `~=<org>`, `held:newest` (all its stream entries', its
-- newest stream entry's); `~=` the sums over every organization. A stream entry's bytes are
-- its ID's sequence part (`<org number>-<bytes>`), so that what MINID trims is subtracted
-- from its IDs alone (an entry of a version before, `-0`, counts nothing).
local function bytes_of(v)
  local h, n = string.match(v or '', '^(%d+):(%d+)$')
  return tonumber(h) or 0, tonumber(n) or 0
end
local function journal(of, key, s, orgs, f, bounds, from, to, checked)
  local cap, total = string.match(bounds, '^(%d+):?(%d*)$')
  cap, total = tonumber(cap), tonumber(total)
  local floor = 0
  if from <= math.min(to, checked) then floor = tonumber(redis.call('GET', f) or '0') or 0 end
  local kept = {{}}
  for i = from, to do
    local late = i <= checked and floor > 0
    if not late or (tonumber(string.match(ARGV[i], '^%[%[(%d+)')) or floor) >= floor then
      kept[#kept + 1] = i
    end
  end
  if #kept == 0 then return end
  local g = redis.call('INCRBY', s, int(#kept)) - #kept
  local by, order = {{}}, {{}}
  for n, i in ipairs(kept) do
    local o = of[i]
    local mine = by[o]
    if not mine then
      mine = {{}}
      by[o] = mine
      order[#order + 1] = o
    end
    mine[#mine + 1] = int(g + n)
    mine[#mine + 1] = ARGV[i]
  end
  local sized, added, newer = {{}}, 0, 0  -- the `held:newest` of all, and of each, before
  if total then
    local names = {{'~='}}
    for k, o in ipairs(order) do names[k + 1] = '~=' .. o end
    sized = redis.pcall('HMGET', orgs, unpack(names))
    if sized.err then sized = {{}} end  -- (not a hash: numbered anew below)
  end
  local bytes = {{orgs}}  -- the `held:newest` of each and of all, in one HSET
  for k, o in ipairs(order) do
    local mine, j = by[o], key[o]
    local count = #mine / 2
    local last = redis.pcall('HINCRBY', orgs, o, int(count))
    if type(last) == 'table' then  -- not a hash of counters (an edited Redis; so on the
      redis.call('DEL', orgs)       -- first one): numbered anew
      last = redis.call('HINCRBY', orgs, o, int(count))
    end
    local held, newest = bytes_of(sized[k + 1])
    local was, wasnewest = held, newest
    local first = last - count + 1
    if first == 1 then
      redis.call('DEL', j)
      held, newest = 0, 0
    end
    local at = 1
    while at <= count do
      local upto = math.min(count, at + {CHUNK - 1})
      local id = first + upto - 1
      local size = 0
      for i = at, upto do size = size + #mine[2 * i] end
      local oldest = math.max(0, id - cap + 1)
      if total and oldest > 1 and first > 1 then  -- what MINID is about to trim, by its IDs
        for _, e in ipairs(redis.call('XRANGE', j, '-', string.format('(%d-0', oldest))) do
          held = held - (tonumber(string.match(e[1], '^%d+%-(%d+)$')) or 0)
        end
      end
      local entry = {{j, 'MINID', '=', int(oldest), string.format('%d-%d', id, total and size or 0),
        'n', int(first + at - 1)}}
      for i = at, upto do
        entry[#entry + 1] = mine[2 * i - 1]
        entry[#entry + 1] = mine[2 * i]
      end
      if type(redis.pcall('XADD', unpack(entry))) == 'table' then
        redis.call('DEL', j)
        redis.call('XADD', unpack(entry))
        held = 0
      end
      held, newest = math.max(0, held) + size, size
      at = upto + 1
    end
    if total then
      bytes[#bytes + 1], bytes[#bytes + 2] = '~=' .. o, string.format('%d:%d', held, newest)
      added, newer = added + held - was, newer + newest - wasnewest
    end
  end
  if total then
    local all, tops = bytes_of(sized[1])
    all, tops = math.max(0, all + added), math.max(0, tops + newer)
    bytes[#bytes + 1], bytes[#bytes + 2] = '~=', string.format('%d:%d', all, tops)
    redis.call('HSET', unpack(bytes))
    -- past the total, and more than the slack (an eighth) beyond the newest entries (never
    -- cut: core/journal.py), as one process runs its cut
    over = all > total and all - tops > total - math.floor(total * 7 / 8)
  end
end
-- A worker numbers the entries it sends (its own numbers, not the journal's) and its `mark`
-- holds the last it appended: a round trip whose answer was lost may have run, and what it
-- carried goes again with the next one. `appended`: how many of the `count` entries from
-- number `n` on are in the journal already; `sent`: they all are now (the mark lasts a day
-- after a worker's last entry).
local marks = {{}}  -- (what `appended` read, for `sent`: nothing writes a mark in between)
local function appended(mark, n, count)
  if count == 0 then return 0 end
  local done = tonumber(redis.call('GET', mark) or '-1')
  marks[mark] = done
  return math.min(count, math.max(0, done - n + 1))
end
local function sent(mark, n, count)
  local last = n + count - 1
  if count > 0 and last > (marks[mark] or tonumber(redis.call('GET', mark) or '-1')) then
    redis.call('SET', mark, int(last), 'PX', '86400000')
  end
end
"""

APPEND = f"""#!lua
{JOURNAL}
local n, count = tonumber(ARGV[2]), #ARGV - 2
local from = 3 + appended(KEYS[3], n, count)
local of, key = streams(3, 6)  -- KEYS[6..]: the streams (KEYS[1], the journal of the version
journal(of, key, KEYS[2], KEYS[5], KEYS[4], ARGV[1], from, #ARGV, #ARGV)  -- before)
sent(KEYS[3], n, count)
return {{count, over and 1 or 0}}
"""

# A reset's clearing outside a group's commit (a journal no gate holds): the streams of the
# versions before, the one of no organization (KEYS[6]) and the counters go (KEYS[5]: the
# organizations', so each organization's stream is read no more and dropped by its next entry:
# JOURNAL), and the reset's commit (ARGV[1]) becomes the floor. `allow-oom`: it frees memory.
CLEAR = """#!lua flags=allow-oom
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6])
for i = 7, #KEYS do redis.call('DEL', KEYS[i]) end  -- the organizations' the worker named
redis.call('SET', KEYS[4], ARGV[1])
"""

# The flush barrier's ask (module docstring): publish `f<nonce>` on the sandbox's handoff
# channel KEYS[1] and answer how many listeners heard it, and the live workers' liveness
# marks (KEYS[2], `workers`: redis_serving.py). Publishes only: `allow-oom`, a full Redis's
# journal reads wait for their workers too.
FLUSH_ASK = """#!lua flags=allow-oom
local heard = redis.call('SPUBLISH', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {heard, redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')}
"""

# A worker's word on the channel KEYS[1] (`a<nonce> <worker>`, or `h<worker>`), sent behind
# the entries it held, on the same connection: Redis has them when the word is heard.
FLUSH_ACK = """#!lua flags=allow-oom
return redis.call('SPUBLISH', KEYS[1], ARGV[1])
"""

# An organization's journal marks (`org-marks`, a field an organization, its id in hex): the
# sandbox's mark of each of its own resets, in order, space-separated (WRITE sets them).
ORG_MARKS = """#!lua flags=no-writes
return redis.call('HGET', KEYS[1], ARGV[1])
"""

# A tenant's read: the newest `ARGV[1]` stream entries of its organization's stream KEYS[3]
# (if the hash of counters KEYS[4] counts it, field ARGV[2]: else it holds entries from before
# a clearing, JOURNAL), and of the journals the versions before kept, one stream for every
# organization (KEYS[1]: many entries a stream entry, `journal-v2`; KEYS[2]: one, `journal`):
# read with the new ones, its organization's picked out by the reader, until cleared.
READ_ORG = """#!lua flags=no-writes
local mine = {}
if redis.pcall('HEXISTS', KEYS[4], ARGV[2]) == 1 then  -- (not a hash: an edited Redis, none)
  mine = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', ARGV[1])
end
return {redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1]),
  redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1]), mine}
"""

# The organizations with entries (the fields of the hash of counters, but those of bytes,
# `~=`: redis_total.py), for the operator's read.
ORGS = """#!lua flags=no-writes
local found = redis.pcall('HKEYS', KEYS[1])
if found.err then return {} end  -- not a hash (an edited Redis): the next append starts it anew
local orgs = {}
for _, f in ipairs(found) do
  if string.sub(f, 1, 2) ~= '~=' then orgs[#orgs + 1] = f end
end
return orgs
"""

# The operator's read: the journals of the versions before (as READ_ORG), then of each stream
# KEYS[6..] that the hash of counters KEYS[4] counts (field ARGV[k - 3]: KEYS[5] is the one of
# no organization, `~-`) the stream entries that hold one of the sandbox's newest `ARGV[1]`
# (numbered past the counter KEYS[3] less that), newest first, in pages: the newest of every
# organization, not every organization's all (a thousand organizations each with a full stream
# would be a million entries to send).
READ_ALL = """#!lua flags=no-writes
local cap = tonumber(ARGV[1])
local above = tonumber(redis.call('GET', KEYS[3]) or '0') - cap
local out = {redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', cap),
  redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', cap)}
for k = 5, #KEYS do
  local found = {}
  if redis.pcall('HEXISTS', KEYS[4], ARGV[k - 3]) == 1 then
    local upto, done = '+', false
    while not done do
      local page = redis.call('XREVRANGE', KEYS[k], upto, '-', 'COUNT', 16)
      done = #page < 16
      for _, e in ipairs(page) do
        local f = e[2]
        if (tonumber(f[#f - 1]) or 0) <= above then
          done = true
          break
        end
        found[#found + 1] = e
        upto = '(' .. e[1]
      end
    end
  end
  out[#out + 1] = found
end
return out
"""


def entries(found: list[Any]) -> list[tuple[int, bytes]]:
    """(number, entry) of each journal entry in XREVRANGE's answer (stream entries newest
    first, fields `n` then `e` per entry: an older version's hold one), newest first. An
    entry numbered among its organization's (its field `e<n>`) gets that number third in its
    head, as `_decode` reads it: `[[position,"org",n],`."""
    out: list[tuple[int, bytes]] = []
    for _, fields in found:
        first = int(fields[1])
        names, held = fields[2::2], fields[3::2]
        for i in range(len(held) - 1, -1, -1):
            raw, name = held[i], names[i]
            if len(name) > 1:  # (the org's closing quote: it holds none, `counted`)
                closing = raw.index(b'"', raw.index(b'"') + 1) + 1
                raw = raw[:closing] + b"," + name[1:] + raw[closing:]
            out.append((first + i, raw))
    return out


def org_entries(found: list[Any], numbered: bool) -> list[tuple[int, bytes]]:
    """(number, entry) of each journal entry in XREVRANGE's answer on a stream of JOURNAL's
    (fields `n`, the organization's number of the first, then one a journal entry, named by
    its sandbox number), newest first; `numbered`: an organization's, whose entries get their
    number among its own third in their head, as `_decode` reads it: `[[position,"org",n],`."""
    out: list[tuple[int, bytes]] = []
    for _, fields in found:
        first = int(fields[1])
        names, held = fields[2::2], fields[3::2]
        for i in range(len(held) - 1, -1, -1):
            raw = held[i]
            if numbered:
                closing = raw.index(b'"', raw.index(b'"') + 1) + 1
                raw = b"%s,%d%s" % (raw[:closing], first + i, raw[closing:])
            out.append((int(names[i]), raw))
    return out


# An entry of an organization starts `[[position,"org"],` (`_encode`), as JOURNAL matches it.
_HEAD = re.compile(rb'\[\[\d+,"([^"\\]*)"\]')


def stream_orgs(*sent: list[bytes]) -> list[bytes]:
    """The organizations of the entries `sent`, each once, in the order they first come (as
    JOURNAL's `streams` finds them: the worker declares their streams in that order)."""
    found: dict[bytes, None] = {}
    for entries in sent:
        for raw in entries:
            if (head := _HEAD.match(raw)) is not None:
                found[head.group(1)] = None
    return list(found)


class Staged(list[bytes]):
    """The entries of the group being answered, encoded (`_encode`), and their organizations
    as `counted` writes them, each once in the order they first come: the streams the commit
    that appends them declares (what `stream_orgs` finds again in the entries otherwise, a
    regular expression an entry: ~4,000 instructions of a create's ~400,000)."""

    __slots__ = ("orgs",)

    def __init__(self) -> None:
        super().__init__()
        self.orgs: dict[str, None] = {}


def _encode(entry: tuple[Any, ...] | JournalEntry) -> bytes:
    """The entry as JSON, its fields in order but the position, which stands first, as
    `[position]`, in the place of the worker's own sequence (no reader uses that: the
    journal numbers its entries): a script finds it at once, anchored, and a version before
    positions reads the entry as it did. The entry's organization follows its position there
    (`[position, "org"]`), for the script that numbers it among that organization's."""
    if isinstance(entry, tuple) and entry[10] is None and entry[11] is None:
        # no bodies kept (the default): nothing to turn into text, and no copy of the fields
        org = entry[ORG]
        head = [entry[POSITION]] if org is None else [entry[POSITION], counted(org)]
        return orjson.dumps([head, *entry[1:POSITION]])
    fields = list(entry) if isinstance(entry, tuple) else [getattr(entry, f) for f in FIELDS]
    for at in (10, 11):  # request, response: (headers, body, truncated) or None
        message = fields[at]
        if message is not None:
            headers, body, truncated = message
            fields[at] = [
                [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                body.decode("latin-1"),
                truncated,
            ]
    org = fields[ORG]
    head = [fields[POSITION]] if org is None else [fields[POSITION], counted(org)]
    return orjson.dumps([head, *fields[1:POSITION]])


@functools.lru_cache(maxsize=1024)  # a few organizations, an entry each request
def counted(org: str) -> str:
    """The organization as the script counts it: as it is, unless JSON would escape it (the
    script's pattern stops at a quote or a backslash) or it could be taken for such a one,
    then `~` and its UTF-8 in hex."""
    if PLAIN.fullmatch(org):
        return org
    return "~" + org.encode("utf-8", "surrogatepass").hex()


def uncounted(org: str) -> str:
    """The organization `counted` wrote: its id again, which names its share of the journal
    (core/journal.py) as the tenant reading it names it (an id with a quote read back in hex
    named no share: its tenant's journal read empty)."""
    if org.startswith("~"):
        return bytes.fromhex(org[1:]).decode("utf-8", "surrogatepass")
    return org


def _decode(sequence: int, raw: bytes) -> JournalEntry:
    """An entry `_encode` wrote, or one of a version before positions (its own sequence
    first: position 0)."""
    fields = orjson.loads(raw)
    head: list[Any] = fields[0] if isinstance(fields[0], list) else [0]
    position = head[0]
    org, org_sequence = (uncounted(head[1]), head[2]) if len(head) > 2 else (None, 0)
    for at in (10, 11):
        message = fields[at]
        if message is not None:
            headers, body, truncated = message
            fields[at] = (
                [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                body.encode("latin-1"),
                truncated,
            )
    fields[0] = sequence
    fields[POSITION:] = [position, org, org_sequence]
    return JournalEntry(*fields)


class SharedJournal(Journal):
    """A Journal whose reads show every worker's entries (see the module docstring). It keeps
    none of them itself, only its newest, for the request log (`last()`): each read reads
    Redis's."""

    __slots__ = ("held", "holding", "ordered", "store", "timer")

    def __init__(
        self,
        store: RedisStore,
        capacity: int = DEFAULT_CAPACITY,
        *,
        bodies: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        total_bytes: int = DEFAULT_TOTAL_BYTES,
    ) -> None:
        super().__init__(capacity, bodies=bodies, max_bytes=max_bytes, total_bytes=total_bytes)
        self.store = store
        store.journal_capacity = capacity
        store.journal_total = total_bytes  # over every organization's stream (redis_total.py)
        self.timer: asyncio.TimerHandle | None = None
        # Whether the request recording now is answered with its group's commit (the gate
        # sets it), and those entries, in order, until that commit returned.
        self.holding: Callable[[], bool] = lambda: False
        self.held: list[tuple[Any, ...] | JournalEntry] = []
        # Whether the request recording now answers from a copy caught up for it (the gate
        # sets it): if not, its answer is UNORDERED against other workers' resets.
        self.ordered: Callable[[], bool] = lambda: False

    def position(self) -> int:
        """The commit this worker's copy stands at, for an answer made from it (see the
        module docstring)."""
        seen: int = self.store.seen
        return seen if seen >= 0 and self.ordered() else UNORDERED

    def mark(self) -> int:
        """Past this worker's copy, which a reset runs on under the lease (caught up with
        every commit): the reset's own commit is numbered from here on, and so is any copy
        that catches up with it."""
        mark = max(self.store.seen, 0) + 1
        self.store.marking = mark  # kept as the latest with the reset's commit
        return mark

    def org_mark(self, org: str) -> int:
        """As in one process; the organization's marks go with the reset's commit (the
        WRITE script), read first under the lease (`fetch_marks`): another worker's reset of
        the organization was committed before this one could take it."""
        server = self.mark()
        marks = [*self.marks_of(org), server]
        self.org_marks[org] = self.store.org_marking[org] = marks
        return len(marks)

    async def fetch_marks(self, org: str) -> None:
        """The organization's marks as Redis keeps them, unless this worker's group holds a
        reset of it not yet committed (whose marks are the newer)."""
        found = await self.store.org_marks_fetch(org)
        pending = self.store.org_marking.get(org)
        self.org_marks[org] = pending if pending is not None else found

    def latest_mark(self) -> int:
        """The latest mark a reset of the sandbox handed out, as of this worker's copy."""
        reset_mark: int = self.store.reset_mark
        return reset_mark

    def handed_out(self, mark: int) -> bool:
        """A mark is a commit number of the sandbox, which Redis keeps: any up to the latest
        reset's may be asked for (one between two resets' means "after that commit"); a later
        one names no reset yet (and would mean another moment once commits reach it)."""
        return mark <= self.latest_mark()

    def _keep(self, entry: tuple[Any, ...] | JournalEntry) -> None:
        if self.holding():
            self.held.append(entry)
            staged = self.store.staged
            staged.append(_encode(entry))  # kept only with the group's commit
            org = entry[ORG] if isinstance(entry, tuple) else entry.org
            if org is not None:  # ... to its organization's stream (`Staged`)
                staged.orgs[counted(org)] = None
            return
        self._send(entry)

    def _send(self, entry: tuple[Any, ...] | JournalEntry, pressing: bool = False) -> None:
        self._last = entry  # this worker's own newest, for `last()` (--log-requests)
        # goes with the worker's next round trip; a read's answer (made from a copy caught up
        # for it) with its next commit or lease, or the flush (redis.py `send_changes`)
        pressing = pressing or not self.ordered()
        self.store.outbox.add(_encode(entry), pressing=pressing)
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: sent with the next round trip
                self.timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)

    def detach(self) -> list[tuple[Any, ...] | JournalEntry]:
        """The entries held for the group being committed now (its staged copies go with
        its commit): the next group's are held apart from them."""
        held, self.held = self.held, []
        return held

    def settle(
        self, failed: Failed | None, held: list[tuple[Any, ...] | JournalEntry] | None = None
    ) -> None:
        """The held entries' commit returned (or none will come): kept as they are, or, when
        `failed` (the commit failed, and did not append them), each answered entry as the
        503 its client got instead (UNORDERED: answered now, from no copy)."""
        if held is None:
            held = self.detach()
        if failed is None:
            # The journal is Redis's, and read there (`fetch`, `query`): the worker keeps no
            # copy of its entries (it kept each, bounded, counted and dropped, ~150 bytecodes
            # a request, and up to 1,000 bodies an organization, for `last()` alone).
            if held:
                self._last = held[-1]
            return
        for entry in held:
            fields = entry if isinstance(entry, tuple) else tuple(getattr(entry, f) for f in FIELDS)
            status, request_id, response = fields[5], fields[6], fields[11]
            if status:  # 0: the connection was dropped, nothing was sent either way
                headers, body = failed(request_id, response[0] if response else ())
                fields = reanswered(fields, 503, headers, body)
            self._send((*fields[:POSITION], UNORDERED, *fields[POSITION + 1 :]), pressing=True)

    def unstage(self, kept: bool) -> None:
        """The staged copies of a group that sends no commit: sent as they are when its
        answers stand, dropped when they do not (settle sends the 503s instead); a reset
        in it did not happen, nor does its clearing."""
        self.store.clearing = False
        self.store.sweeping = []
        self.store.marking = 0
        self.store.org_marking = {}
        staged, self.store.staged = self.store.staged, Staged()
        if kept and staged:
            self.store.outbox.add(*staged)
            self._schedule()

    def flush(self) -> None:
        """Send what no round trip has taken along (on a serving worker, without waiting for
        it); if Redis does not take them (unreachable, full, refused), they wait for a later
        round trip (redis_outbox.py)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        with contextlib.suppress(Exception):
            self.store.journal_flush()

    async def fetch(self, org: str | None = None) -> None:
        """Read every worker's entries for the request about to read the journal (`org`: a
        tenant's, its organization's stream; None: the operator's): on a serving worker, a
        read of the journal waits for Redis here, not in the read (which would hold the
        worker's event loop for a round trip), after every live worker sent what it held
        (the flush barrier: `BARRIER_S` at most)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        await self.store.journal_barrier(BARRIER_S)
        _FETCHED.set(await self.store.journal_fetch(self.capacity, org))

    def query(self, *args: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], int]:
        """Journal.query over every worker's entries (its arguments, whatever they are): the
        entries read are kept in a journal of their own, which holds each organization to its
        share's bound as this one does (the byte bound applies there, as Redis keeps entries
        by count)."""
        found = _FETCHED.get()
        if found is None:  # not fetched (outside a server): read now
            self.flush()
            found = self.store.journal_read(self.capacity, kwargs.get("org"))
        view = Journal(self.capacity, bodies=self.bodies, max_bytes=self.max_bytes)
        for n, raw in found:
            view._keep(_decode(n, raw))
        return view.query(*args, **kwargs)

    def imported(self, orgs: Collection[str]) -> None:
        """The streams of the organizations an import brings are named for its commit, which
        deletes those the journal does not count (WRITE): an organization the server no
        longer knew at a global reset kept its stream, read no more (`clear`), and imported
        again it found that stream still there until its next entry dropped it."""
        self.store.sweeping = [self.store.stream_of(org) for org in orgs]

    def clear(self, orgs: Collection[str] = ()) -> None:
        """A global reset's: this worker's entries go at once; the streams go with the
        reset's commit, in the same script (a reset that fails does not clear them), or at
        once when that was written already (no gate holds the reset: tests). The streams of
        `orgs` are named for the script to delete (a stream it does not name is read no more,
        and dropped by its organization's next entry: JOURNAL; without this one it would
        hold up to `capacity` entries for nothing until then)."""
        super().clear()
        self.store.sweeping = [self.store.stream_of(org) for org in orgs]
        self.held.clear()
        self.store.staged = Staged()
        self.store.outbox.clear()
        if self.holding():
            self.store.clearing = True
        else:
            self.store.journal_clear()
