"""The Lua scripts of the Redis store (redis.py), in one place: what each round trip runs in
Redis, and which of them a full Redis still runs (their `#!lua flags=`).

A script is one round trip and runs alone in Redis, so each is the unit of atomicity: a commit
is applied whole or refused whole, and a lease is taken with the changes a worker missed.
"""

from __future__ import annotations

from .redis_journal import JOURNAL

# What a create costs redis-server (redis15, 2026-12-03; bench/README.md "instructions a create
# in redis-server"): ~110,000 instructions, nearly all in the WRITE script of its group commit
# (16 creates, ~1.73 M instructions a commit). Redis's Lua hashes every byte of every string it
# makes (its lstring.c hashes with step 1, against hash flooding): the ~19 KB of arguments a
# commit (16 rows of ~850 bytes, 16 journal entries of ~290) cost ~10 instructions a byte
# before the script runs, and again for every byte a command answers into Lua (the journal's
# XRANGE of the entries its MINID trims, ~200 k a commit). Then the commands themselves, and
# Redis feeding their effects to the AOF (~15 %). A command costs the script ~2,000-6,000
# instructions over its own work, a Lua number handed to one ~2,000 (Redis formats it with
# `%.17g`; the scripts format integers with `%d` first, `int`), a pattern match an entry
# ~5,000: so WRITE reads its counters, the lease and the one in line in one MGET (TYPE only
# for a key MGET finds missing), follows the census's sizes through its own writes (no HLEN,
# ZCARD, STRLEN at the end), and finds the journal entries' organizations by their shared
# head. What is left is mostly bytes: the rows, the journal's entries, the trimmed entries
# read back, the AOF.

# The write: lease and position checked, then each commit applied and logged in order, and the
# lease released. A group commit's batches come merged into one commit (persist.merged), so the
# script runs a handful of commands for the whole group, and its rows come as arguments (no
# JSON to decode here). A commit is numbered by the batches it holds (`k`), so a commit number
# still counts requests' batches: the log keeps the newest `maxlen` of them, as ever.
# `#!lua` (no flags): Redis checks maxmemory before the script starts, so a full Redis refuses
# the whole write instead of applying part of it.
# A key of the sandbox overwritten by someone else (by hand, another program) would stop a
# script at its first command on it, what the script wrote before kept: a reset's commit would
# delete the rows and stop at `seq`. So a script checks the keys it writes before it writes
# anything, and refuses with DAMAGED naming the key (redis_pipe.py REFUSALS). TYPE is O(1).
INTACT = """
local function holds(k, want)
  local t = redis.call('TYPE', k)['ok']
  if t ~= 'none' and t ~= want then
    error({err = 'DAMAGED ' .. k .. ' holds a ' .. t .. ', not a ' .. want})
  end
end
-- A counter's value as GET or MGET read it (false: missing, or not a string, which only
-- then costs a TYPE to tell), refused unless a number.
local function number(k, v)
  if not v then
    holds(k, 'string')
    return nil
  end
  if not tonumber(v) then
    error({err = 'DAMAGED ' .. k .. ' holds ' .. string.format('%q', string.sub(v, 1, 40))
      .. ', not a number'})
  end
  return v
end
local function counts(k)
  local v = redis.pcall('GET', k)
  if type(v) == 'table' then holds(k, 'string') end  -- another type: named (holds refuses)
  return number(k, v)
end
-- The sandbox as the mock left it: its census (KEYS `whole`, "born:commits:rows:order:meta":
-- the birth mark of its commit count, the commit number, the fields of `rows`, the members
-- of `order`, the bytes of `meta`), written by each commit (WRITE) and checked by every round
-- trip that reads or writes the state, all O(1) (GET, STRLEN, HLEN, ZCARD). A key deleted,
-- renamed away, expired or overwritten by someone else was seen only by a worker that read
-- everything again (the others answered from their copies, and the workers disagreed until a
-- reset): now every worker's next round trip refuses with DAMAGED naming the key. No census
-- (a sandbox an older version wrote, or every key deleted): nothing to hold it to, and its
-- mark is `0`. The birth mark is new when a commit finds no commit count (lost: FLUSHALL,
-- deleted): a worker whose copy was read under another reads everything again (a worker at
-- commit 5 that had not looked since the count was lost took the 6th commit of the new count
-- for the next of its own, and missed the five before it). `check` false: only the mark (a
-- lease that mends the sandbox, MENDS in http/shared.py).
local function sized(cmd, k, want)
  local v = redis.pcall(cmd, k)
  if type(v) == 'table' then holds(k, want) end  -- another type: named (holds refuses)
  return v
end
local function birth(salt)
  local t = redis.call('TIME')
  return string.format('%x%x', tonumber(t[1]), tonumber(t[2])) .. string.gsub(salt, '%X', '')
end
-- Commits past the census (`commits` ahead of it) were written by a worker that keeps none:
-- an earlier version's (a deployment rolled back, then forward again). They are taken for
-- honest when the log ends with the count (each commit logs itself under its number; a count
-- set by hand has no entry), `rows` and `order` hold as many rows, not none, and `meta` is
-- there: the census is taken again from Redis, under a new birth mark, so that every worker
-- reads everything again (what the earlier worker wrote is not followed through the log).
-- Anything else is refused as before. Only a stale census costs these commands.
local function adopted(whole, count, log, meta, rows, order, salt)
  local top = redis.pcall('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if type(top) ~= 'table' or type(top[1]) ~= 'table' or top[1][1] ~= count .. '-0' then
    return nil
  end
  local h, z = redis.pcall('HLEN', rows), redis.pcall('ZCARD', order)  -- (another type: below)
  local m = redis.pcall('STRLEN', meta)
  if type(h) ~= 'number' or type(z) ~= 'number' or type(m) ~= 'number' then return nil end
  local since = " (the commits since the census were an earlier version's, which keeps none)"
  if h == 0 or h ~= z then
    return nil, 'DAMAGED ' .. rows .. ' holds ' .. h .. ' rows and ' .. order .. ' ' .. z .. since
  end
  if m == 0 then return nil, 'DAMAGED ' .. meta .. ' is gone' .. since end
  local born = birth(salt)
  redis.call('SET', whole, table.concat({born, count, h, z, m}, ':'), 'KEEPTTL')
  return born
end
local function census(whole, commits, now, meta, rows, order, check, log, salt, got)
  local c = got  -- (the census as the caller read it already: PEEK's MGET)
  if not c then c = redis.pcall('GET', whole) end
  if type(c) == 'table' then holds(whole, 'string') end
  if not c then return '0' end  -- (the mark of a count no census was written for)
  local born, n, h, z, m = string.match(c, '^(%x+):(%d+):(%d+):(%d+):(%d+)$')
  local count = tonumber(now or '0')
  if n and count > tonumber(n) then
    local new, why = adopted(whole, count, log, meta, rows, order, salt)
    if new then return new, true end
    if why and check then error({err = why}) end
  end
  if not check then return born or '0' end
  if not n then
    error({err = 'DAMAGED ' .. whole .. ' holds ' .. string.format('%q', string.sub(c, 1, 40))
      .. ', not the census the mock left there'})
  end
  local function left(k, found, want, what)
    if found ~= tonumber(want) then
      local was = 'holds ' .. found .. ' ' .. what .. ', not the ' .. want .. ' the mock left there'
      if found == 0 then
        was = 'is gone (deleted, renamed or expired by someone else), with the ' .. want .. ' '
          .. what .. ' the mock left there'
      end
      error({err = 'DAMAGED ' .. k .. ' ' .. was})
    end
  end
  left(commits, tonumber(now or '0'), n, 'commits')
  left(meta, sized('STRLEN', meta, 'string'), m, 'bytes')
  left(rows, sized('HLEN', rows, 'hash'), h, 'rows')
  left(order, sized('ZCARD', order, 'zset'), z, 'rows')
  return born, {tonumber(h), tonumber(z), tonumber(m)}  -- (their sizes, their types with them)
end
"""

# A commit's log entry (WRITE, in its loop over the commits): under the ID `n-0`, so that the
# log keeps the newest `maxlen` batches (MINID) and a catch-up reads from the one after its own
# (CHANGES); a log ahead of the number (written by an older version, or `commits` went back) is
# dropped: it only spares a catch-up reading everything. The entry names what the commit
# changed and holds none of its rows: `n` 0 first (no commit is numbered 0), `k`, then `m`
# (empty) when it wrote the meta row, `d` once per deleted field, `u` once per upserted field
# (`table\0id`). The rows are in `rows`
# and `meta` already, written by the same script; copied into the entry as well, every row
# crossed Redis twice (and the AOF twice: Redis replicates a script's effects), and the log held
# a copy of every row of its newest `maxlen` commits. A catch-up reads them there (CHANGES,
# NAMED). A document (`logged`: a wipe's, or a commit of more fields than one XADD takes) is
# logged as it was, `n`, `k` and `b` with its rows, and read as it was, by this version and the
# one before. Numbered 0 (the number is the ID's), an entry is skipped by every version
# before: a catch-up of theirs stops at the first entry whose `n` is not the commit it
# expects, and reads everything instead (see NAMED: a rollback). (Without `n`, the versions
# before group commits, which read `n` as a key, would fail on it.)
LOG_ENTRY = """
  local oldest = math.max(0, n - maxlen + 1)
  local entry = {log, 'MINID', '~', int(oldest), int(n) .. '-0'}
  if logged ~= '' then
    entry[6], entry[7], entry[8], entry[9], entry[10], entry[11] = 'n', int(n), 'k', ARGV[i + 1],
      'b', logged
  else
    entry[6], entry[7], entry[8], entry[9] = 'n', '0', 'k', ARGV[i + 1]
    local e = 9
    if flags >= 2 then
      entry[10], entry[11] = 'm', ''
      e = 11
    end
    for c = i + 9, i + 8 + deletes do
      entry[e + 1], entry[e + 2] = 'd', ARGV[c]
      e = e + 2
    end
    for c = i + 9 + deletes, i + 7 + deletes + 2 * upserts, 2 do
      entry[e + 1], entry[e + 2] = 'u', ARGV[c]
      e = e + 2
    end
  end
"""

WRITE = (
    """#!lua
local rows, order, meta, log, commits, lease, requests, seq =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local token, seen, maxlen, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
-- ARGV[7]: the worker's name when it keeps the lease (its next group may already be running,
-- http/shared.py); the answer then says whether another worker waits for it (KEYS[12]).
-- Given back while one waits, the lease's release is published on KEYS[18], the sandbox's
-- handoff channel (redis_handoff.py), so that the waiting worker tries again at once; with
-- pcall, as every publish here: a user whose ACL forbids the channel must not fail a commit
-- half-way (its workers are not told, and find the lease by their fallback tries).
-- ARGV[9]: not empty for a reset's commit: `c` first for a global reset's, which clears the
-- journal (its counters KEYS[11] and KEYS[21], the stream of no organization KEYS[22], the
-- versions before's KEYS[10] and KEYS[15]) and leaves its number
-- as the floor KEYS[14] (redis_journal.py); then the reset's mark, the latest (KEYS[17]);
-- then, for a tenant's reset, `|org=m1 m2 ...`: that organization's marks (KEYS[20]).
-- ARGV[10]: how long (ms) the worker in line keeps its place once the lease is given back
-- (GRACE_MS, redis_handoff.py).
-- ARGV[11..]: the commits (ARGV[5] arguments), then journal entries:
-- ARGV[6] of them whatever happens (recorded since this worker's last round trip, numbered by
-- it from ARGV[8] on, its mark KEYS[13]: late, so held against the floor), then the group's
-- own, kept only with the write (their answers). KEYS[16]: the read windows CHANGES counts.
-- KEYS[19]: the census (INTACT), checked first unless the commit is a wipe, written last.
-- KEYS[21]: the journal's counters of each organization's entries (JOURNAL), cleared with it;
-- KEYS[22..]: the journal's streams, of no organization and of each the entries name (JOURNAL),
-- then for a global reset's, the organizations' streams it deletes (SharedJournal.clear), for
-- an import's those of the organizations it brings (SharedJournal.imported).
local first, always, keep = 11 + tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local from, mark, floor = tonumber(ARGV[8]), KEYS[13], KEYS[14]
local clears, marked = string.sub(ARGV[9], 1, 1) == 'c', string.match(ARGV[9], '^c?(%d+)')
local late = first + always - 1
"""
    + JOURNAL
    + INTACT
    + """
holds(requests, 'hash')
-- the strings it reads, in one MGET: the counters (checked as `counts` does), the lease and
-- the worker in line
local found = redis.call('MGET', seq, commits, KEYS[11], KEYS[17], lease, KEYS[12])
local placed = number(seq, found[1])
local now = number(commits, found[2])
-- a wipe (a global reset, an import) replaces the sandbox, whole or not: it mends it
local wipes = first > 11 and tonumber(ARGV[11]) % 2 == 1
local born, sized = census(KEYS[19], commits, now, meta, rows, order, not wipes, log, token)
if not sized then  -- (the census's HLEN and ZCARD hold them to their types)
  holds(rows, 'hash')
  holds(order, 'zset')
end
-- the sizes of `rows`, `order` and `meta` as the census found them, followed through every
-- HDEL, HSET, ZREM, ZADD and DEL below (their answers count what they changed) for the census
-- written last; unknown (nil) when no census was checked, and read then with HLEN, ZCARD, STRLEN
local h, z, m
if type(sized) == 'table' then h, z, m = sized[1], sized[2], sized[3] end
if not now then born = birth(token) end  -- a new count: a new mark
-- `seq` behind the last row placed (deleted, expired, or set lower by hand: the next rows
-- would be placed before older ones) goes on after it; the end of `order` is O(1) (REV)
local top = redis.call('ZRANGE', order, 0, 0, 'REV', 'WITHSCORES')[2]
if top and tonumber(top) > tonumber(placed or '0') then redis.call('SET', seq, top) end
number(KEYS[11], found[3])
holds(KEYS[16], 'hash')
number(KEYS[17], found[4])
local fresh = first + appended(mark, from, always)  -- those it sent before are not again
local of, key, named = streams(first, 22)
local holder, n = found[5], tonumber(found[2] or '0')
if (holder and holder ~= token) or n ~= seen then
  journal(of, key, KEYS[11], KEYS[21], floor, cap, fresh, late, late)
  sent(mark, from, always)
  return {(holder and holder ~= token) and 'LEASE' or 'BEHIND', over and 1 or 0}
end
local newmeta = false
local i = 11
while i < first do
  -- a commit (redis_log.write_args): flags (1: a wipe, 2: with a meta row), k, the meta
  -- row, the log's entry as a document (or '': made here of the commit's own arguments), how
  -- many deletes, upserts, ceilings, unread windows and read windows; then the deleted
  -- fields, the upserts (field, row), the request-number ceilings (kind, number), the read
  -- windows that go (their fields in KEYS[16]) and those set (field, value). Fields of rows
  -- are `table\0id`.
  local flags, k, logged = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 3]
  local deletes, upserts = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local ceilings, unread = tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7])
  local reads = tonumber(ARGV[i + 8])
  local at = i + 9
  if flags % 2 == 1 then
    redis.call('DEL', rows, order, KEYS[16])
    h, z = 0, 0
  end
  for c = at, at + deletes - 1, 4000 do  -- in slices: Lua's stack holds ~8000 values
    local to = math.min(c + 3999, at + deletes - 1)
    local gone = redis.call('HDEL', rows, unpack(ARGV, c, to))
    if h then h = h - gone end
    gone = redis.call('ZREM', order, unpack(ARGV, c, to))
    if z then z = z - gone end
  end
  at = at + deletes
  if upserts > 0 then  -- a row's place in `order` is the first write since it last existed
    local base = redis.call('INCRBY', seq, ARGV[i + 5]) - upserts
    for c = 0, upserts - 1, 2000 do
      local to = math.min(c + 1999, upserts - 1)
      local new = redis.call('HSET', rows, unpack(ARGV, at + 2 * c, at + 2 * to + 1))
      if h then h = h + new end
      local places = {}
      for r = c, to do
        places[2 * (r - c) + 1], places[2 * (r - c) + 2] = int(base + r + 1), ARGV[at + 2 * r]
      end
      new = redis.call('ZADD', order, 'NX', unpack(places))
      if z then z = z + new end
    end
  end
  at = at + 2 * upserts
  for c = at, at + 2 * ceilings - 1, 2 do
    if tonumber(ARGV[c + 1]) > tonumber(redis.call('HGET', requests, ARGV[c]) or '0') then
      redis.call('HSET', requests, ARGV[c], ARGV[c + 1])
    end
  end
  if flags >= 2 then newmeta = ARGV[i + 2] end
  n = redis.call('INCRBY', commits, ARGV[i + 1])
"""
    + LOG_ENTRY
    + """  if type(redis.pcall('XADD', unpack(entry))) == 'table' then
    redis.call('DEL', log)
    redis.call('XADD', unpack(entry))
  end
  at = at + 2 * ceilings
  if unread > 0 then redis.call('HDEL', KEYS[16], unpack(ARGV, at, at + unread - 1)) end
  at = at + unread
  if reads > 0 then redis.call('HSET', KEYS[16], unpack(ARGV, at, at + 2 * reads - 1)) end
  i = at + 2 * reads
end
if marked then redis.call('SET', KEYS[17], marked) end
for o, m in string.gmatch(ARGV[9], '|([^=|]+)=([^|]*)') do redis.call('HSET', KEYS[20], o, m) end
if newmeta then
  local t = redis.call('TIME')
  redis.call('MSET', meta, newmeta, KEYS[9], int(t[1] * 1000 + math.floor(t[2] / 1000)))
  m = #newmeta
end
-- the census (INTACT), keeping a TTL someone set on it: a sandbox whose keys were all given
-- one goes whole
local sizes = string.format('%s:%d:%d:%d:%d', born, n, h or redis.call('HLEN', rows),
  z or redis.call('ZCARD', order), m or redis.call('STRLEN', meta))
redis.call('SET', KEYS[19], sizes, 'KEEPTTL')
local wanted = 0
if holder and keep == '' then
  redis.call('DEL', lease)
  if found[6] then  -- the one in line tries, within ARGV[10] ms (GRACE_MS)
    redis.call('PEXPIRE', KEYS[12], ARGV[10], 'LT')
    redis.pcall('SPUBLISH', KEYS[18], 'r' .. token)
  end
elseif keep ~= '' and found[6] and found[6] ~= keep then  -- another worker waits (`wants`)
  wanted = 1
end
if clears then
  redis.call('DEL', KEYS[10], KEYS[15], KEYS[11], KEYS[21], KEYS[22])
  for i = named + 1, #KEYS do redis.call('DEL', KEYS[i]) end  -- the organizations' streams
  redis.call('SET', floor, n)
else  -- an import's: the streams of the organizations it brings that the counters KEYS[21]
  -- do not count (a clearing that did not name them left them, read no more; so does the
  -- version before's), named `journal-org:<field in hex>`: dropped now, not at their next entry
  local prefix = #KEYS[22]
  for i = named + 1, #KEYS do
    local field = string.gsub(string.sub(KEYS[i], prefix + 1), '%x%x',
      function(h) return string.char(tonumber(h, 16)) end)
    if redis.pcall('HEXISTS', KEYS[21], field) ~= 1 then redis.call('DEL', KEYS[i]) end
  end
end
-- in one go: the late entries (above), then the group's
journal(of, key, KEYS[11], KEYS[21], floor, cap, fresh, #ARGV, late)
sent(mark, from, always)
return {'OK', n, wanted, born, over and 1 or 0}
"""
)

# The changes after commit `seen`, with the lease taken first when asked (`token` not empty).
# A worker refused the lease is next in line (`wants`, ARGV[6] its name, for ARGV[8] ms: it
# says so again at each try, and is gone if it stops asking): while it waits, no other worker
# takes the lease, so a worker writing without pause cannot starve it. The first refused while
# one is in line is behind it (KEYS[12], for ARGV[9] ms), and in line once that one takes the
# lease. That take is said on the handoff channel KEYS[11] (`t` and the name of the one now in
# line; a release is `r` and the lease's token: redis_handoff.py): the workers refused further
# back try again, and the first of them is behind next. A refusal says whether the worker is
# in line (only a release concerns it then). So two workers writing in turns take the lease
# in two tries each time: one that finds the other holding it (or in line), and one after the
# release.
# KEYS[7] is the worker's journal mark and ARGV[7] the number of the first entry it sends,
# KEYS[8] the journal's floor (redis_journal.py), KEYS[10] the latest reset's mark (answered
# with the changes); KEYS[9] the read windows, a hash of one field a key and class
# (`window:used:before`, redis_log.read_value), and ARGV[10] how many windows this round trip
# counts in it, each `window:reads:field` from ARGV[11] on (one bucket per waiting read, the
# same window once with its number of reads); then flags: `l` when the answer is to list
# every window (HGETALL: an export holds them), `m` when the lease is taken to mend the
# sandbox (INTACT's census is not checked, only its birth mark read); then the journal's
# entries. KEYS[13..16]: the census, meta, rows and order; KEYS[17] the journal's counters of
# each organization's entries, KEYS[18..] its streams (JOURNAL). As RateLimiter does, a window
# counted in another minute starts again from nothing (the clock moved: it only goes
# back with a reset, whose commit drops the windows it resets, WRITE), except in the minute
# just before the one kept: that is a read whose worker took its minute before the clock
# moved, counted in `before` (the old window's count when the clock moved by one minute). So
# a window lasts exactly as long as its minute, however long that is in real time (a clock
# that stands still keeps it until it is moved), with no expiry.
_CHANGES_HEAD = (
    INTACT
    + """
local log, commits, lease, wants = KEYS[1], KEYS[2], KEYS[3], KEYS[6]
local seen, token, ms, far, me = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[6]
local windows = tonumber(ARGV[10])
local listed, entries_from = string.find(ARGV[11 + windows], 'l', 1, true), 12 + windows
-- the keys it writes or reads, first (INTACT): a key overwritten by someone else stops the
-- script before it takes the lease or counts anything (a lease taken, then the script
-- stopped at the journal, stayed held until it ran out, and every worker's writes waited)
local now = counts(commits)
counts(KEYS[5])
counts(KEYS[7])
counts(KEYS[8])
holds(KEYS[9], 'hash')
counts(KEYS[10])
holds(KEYS[12], 'string')  -- the worker behind the one in line: a name
-- the sandbox as the mock left it (INTACT), unless the lease is taken to mend it (ARGV[11 +
-- windows] holds `m`: a global reset's, an import's, whose commit replaces it whole)
local mends = string.find(ARGV[11 + windows], 'm', 1, true)
local born = census(KEYS[13], commits, now, KEYS[14], KEYS[15], KEYS[16], not mends, log, me)
"""
)
_COUNT = """
local counted = {}
for i = 11, 10 + windows do
  local w, by, field = string.match(ARGV[i], '^(%-?%d+):(%d+):(.+)$')
  w, by = tonumber(w), tonumber(by)
  local kept, used, before = redis.call('HGET', KEYS[9], field), by, 0
  local c = by
  if kept then
    local kw, ku, kb = string.match(kept, '^(%-?%d+):(%d+):(%d+)$')
    kw, ku, kb = tonumber(kw), tonumber(ku), tonumber(kb)
    if w == kw then
      used, before, c = ku + by, kb, ku + by
    elseif w == kw - 1 then  -- late: counted in the minute before, the kept one stays
      w, used, before, c = kw, ku, kb + by, kb + by
    elseif w == kw + 1 then
      before = ku
    end
  end
  redis.call('HSET', KEYS[9], field, string.format('%d:%d:%d', w, used, before))
  counted[#counted + 1] = c
end
"""
# A catch-up's entries with their rows (CHANGES, CHANGES_FULL): each entry this version logged
# (LOG_ENTRY: `n` 0, rows named) is answered as the version before logged it, `n` (its ID's
# number), `k`, `m` and the meta row, `d` once per deleted field, then each upserted field
# and its row, so that the worker reads both alike (redis_log.read_entry); an entry of the
# version before (its number in `n`: rows inline, a document) goes as it is. The rows are read from
# `rows` and `meta` (HMGET in slices: Lua's stack holds ~8000 values; one GET of the meta row),
# in the same script as the entries, so as of the last commit `n`, not as of the entry's own.
# Why the worker's copy still ends exactly as the sandbox is at `n`:
# - A row's value at `n` is the one the newest entry naming it wrote; the copy applies the
#   entries in order, so each row named after `seen` ends at that value, and a row named by no
#   entry is as it was at `seen`, as the copy has it. The meta row likewise.
# - A row rewritten later is applied at its newer value early, then again (the same) by the
#   later entry. Its place: an upsert keeps the place of a row the copy has and puts one it
#   lacks last, so the same sequence of upserts and deletes, whatever the values, places every
#   row where the first write since it last existed placed it in `order`.
# - A row deleted later reads as missing, and goes without its upserts: each delete since is
#   in a later entry (every one but a wipe's, and a wipe has the worker read everything), which
#   removes it if the copy had it, and no other row's place depends on it. Re-made since, it is
#   there, and its upserts and deletes place it as above.
# - Between two entries the copy is a mix (some rows ahead of the rest); nothing reads it
#   before the last is applied, and what replica.py derives from rows batch by batch (list
#   indexes, lists of influencers, wallets, sizes) follows each upsert and delete, or is dropped
#   and rebuilt. The one thing that acted on a row's size on its own, the idempotency records'
#   eviction, is not done there: the sandbox's evictions are deletes in the entries.
# - A catch-up that starts mid-log reads the entries after its own, as ever; a wipe in them has
#   it read everything (redis.py `_changes_answer`), as ever.
# - A rollback to the version before: its catch-up answers this version's entries as they are,
#   and its reader takes an entry's number from `n`, 0 in them: it stops at the first, as at a
#   gap in the log, and reads everything. It never applies an entry without its rows
#   (tests/redis/test_log_names.py runs that version's log against this one's, both ways).
# - On a Redis Cluster `rows` and `meta` are declared keys with the sandbox's hash tag.
NAMED = """
local function named(entries, rows, meta)
  local names, into, m = {}, {}, nil
  for _, e in ipairs(entries) do
    local f = e[2]
    if f[1] == 'n' and f[2] == '0' then
      local out = {'n', string.match(e[1], '^%d+')}
      for j = 3, #f - 1, 2 do
        if f[j] == 'u' then
          local r = #names + 1
          names[r] = f[j + 1]
          into[r] = out
        elseif f[j] == 'm' then
          if m == nil then m = redis.call('GET', meta) end
          if m then
            out[#out + 1] = 'm'
            out[#out + 1] = m
          end
        else
          out[#out + 1] = f[j]
          out[#out + 1] = f[j + 1]
        end
      end
      e[2] = out
    end
  end
  for c = 1, #names, 4000 do
    local to = math.min(c + 3999, #names)
    local found = redis.call('HMGET', rows, unpack(names, c, to))
    for r = c, to do
      local row = found[r - c + 1]
      if row then
        local out = into[r]
        out[#out + 1] = names[r]
        out[#out + 1] = row
      end
    end
  end
  return entries
end
"""
_AFTER = (
    NAMED
    + """
local n = tonumber(now or '0')
-- the latest reset's mark; in a sandbox an older version reset, its last global reset's commit
local marked = redis.call('GET', KEYS[10]) or redis.call('GET', KEYS[8])
local all = false  -- every window, when asked for (an export)
if listed then all = redis.call('HGETALL', KEYS[9]) end
if n == seen then return {'OK', n, {}, counted, marked, all, born, over and 1 or 0} end
-- far behind, or the store went back (flushed, or restored from an older copy): read it all
if n - seen > far or n < seen then
  return {'FAR', n, {}, counted, marked, all, born, over and 1 or 0}
end
-- the commits after `seen` (each logged under its number, WRITE), newest first
local after = string.format('(%d-0', math.max(seen, 0))
local entries = redis.call('XREVRANGE', log, '+', after, 'COUNT', string.format('%d', n - seen))
return {'OK', n, named(entries, KEYS[15], KEYS[14]), counted, marked, all, born, over and 1 or 0}
"""
)
CHANGES = (
    "#!lua"
    + _CHANGES_HEAD
    + """if token ~= '' then
  local first = redis.call('GET', wants)
  local ours = not first or first == me
  if not (ours and redis.call('SET', lease, token, 'NX', 'PX', ms)) then
    if redis.call('GET', lease) ~= token then
      if ours then
        redis.call('SET', wants, me, 'PX', ARGV[8])
        redis.pcall('SPUBLISH', KEYS[11], 'w')  -- a holder keeping it idle gives it back now
        return {'HELD', 1}  -- in line: only a release concerns it
      end
      local second = redis.call('GET', KEYS[12])
      if not second or second == me then redis.call('SET', KEYS[12], me, 'PX', ARGV[9]) end
      return {'HELD', 0}
    end
  end
  if first == me then
    local second = redis.call('GET', KEYS[12])
    if second and second ~= me then  -- the one behind is in line now
      redis.call('SET', wants, second, 'PX', ARGV[9])
      redis.call('DEL', KEYS[12])
    else
      redis.call('DEL', wants)
      second = ''
    end
    redis.pcall('SPUBLISH', KEYS[11], 't' .. second)  -- those refused behind it try again
  end
end
"""
    + _COUNT
    + JOURNAL
    + """
-- the journal entries this worker recorded since its last round trip
local n, count = tonumber(ARGV[7]), #ARGV - entries_from + 1
local at = entries_from + appended(KEYS[7], n, count)
local of, key = streams(entries_from, 18)
journal(of, key, KEYS[5], KEYS[17], KEYS[8], ARGV[5], at, #ARGV, #ARGV)
sent(KEYS[7], n, count)
"""
    + _AFTER
)

# A read's catch-up on a full Redis (CHANGES refused: OOM), with the same keys and arguments
# less the journal's entries: the reads are counted in their windows, as they must be, and
# nothing else is written. `allow-oom`: Redis runs it full, and lets its HSETs through: a
# window is a few dozen bytes a key, rewritten in place as its minutes go by.
CHANGES_FULL = "#!lua flags=allow-oom\nlocal over = false" + _CHANGES_HEAD + _COUNT + _AFTER

# A read's catch-up in the common case (PEEK): nothing to count (no read window: an `unlimited`
# key's reads, or no partner read), no journal entry to carry, no lease, no list of windows, no
# mending. CHANGES then writes nothing, but still paid for all it may do: 17 keys and their
# arguments made Lua strings, six keys held to their types for the writes it did not make
# (journal-seq, the worker's mark, the floor, `reads`, the reset mark, `behind`), the journal's
# functions; a catch-up's fixed cost was most of a read's in Redis (read16, ~0.4 M instructions a
# catch-up). PEEK reads what the copy is made of and nothing else, and holds exactly that to the
# census (INTACT): the commit count, the census itself, `meta`, `rows` and `order` (STRLEN, HLEN,
# ZCARD as CHANGES), the reset mark and the floor (numbers, as CHANGES counts them; MGET reads all
# four strings at once, then EXISTS, or on the whole way TYPE, only for a mark it finds missing),
# and the log it reads (NAMED, as CHANGES). In Redis, a catch-up with nothing changed: CHANGES 184k
# instructions, PEEK 69k (bench/README.md, read17; the whole way every time, 111k: INTACT's
# functions made and ~10 tonumber a call). A key it does not read (the journal's, `reads`, `behind`)
# is still caught by the next round trip that writes it, as before: a read never depended on it. Its
# answer is CHANGES's, so the worker reads both alike. A census a commit count ran past (an older
# version's commits, INTACT `adopted`) is answered `MORE`: adopting it writes a new census, which is
# CHANGES's to do. No `no-writes` flag, on purpose: a Redis that refuses writes (full, a replica,
# MISCONF, NOREPLICAS) refuses it as it refused CHANGES, so reads answer as the README says (a full
# Redis: CHANGES_FULL, as a refused CHANGES was), and a PEEK that ran says Redis takes writes again
# (ROOMY).
# KEYS: log, commits, reset mark, floor, census, meta, rows, order; ARGV: seen, far, salt.
PEEK = (
    """#!lua
local found = redis.call('MGET', KEYS[2], KEYS[5], KEYS[3], KEYS[4])
local now, c, reset, floor = found[1], found[2], found[3], found[4]
-- The common case first, before any function is made (a closure a call each): the count at
-- the worker's own, the census of that count, `rows`, `order` and `meta` of its sizes, the
-- marks numbers or missing (EXISTS: MGET reads a key of another type as missing). Anything
-- else goes the whole way below, which says what is wrong exactly as CHANGES does.
if now == ARGV[1] and c and (not reset or tonumber(reset)) and (not floor or tonumber(floor)) then
  local born, n, h, z, m = string.match(c, '^(%x+):(%d+):(%d+):(%d+):(%d+)$')
  if n == now and redis.pcall('HLEN', KEYS[7]) == tonumber(h)
      and redis.pcall('ZCARD', KEYS[8]) == tonumber(z)
      and redis.pcall('STRLEN', KEYS[6]) == tonumber(m) then
    local absent = (reset and 0 or 1) + (floor and 0 or 1)
    if absent == 0 or redis.call('EXISTS', KEYS[3], KEYS[4]) == 2 - absent then
      return {'OK', tonumber(now), {}, {}, reset or floor or false, false, born, 0}
    end
  end
end
"""
    + INTACT
    + NAMED
    + """
local commits, seen, far = KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2])
local now = number(commits, found[1])
local c = found[2]
if c then
  local n = string.match(c, '^%x+:(%d+):%d+:%d+:%d+$')
  if n and tonumber(now or '0') > tonumber(n) then return {'MORE'} end
end
local born = census(KEYS[5], commits, now, KEYS[6], KEYS[7], KEYS[8], true, KEYS[1], ARGV[3], c)
local reset, floor = number(KEYS[3], found[3]), number(KEYS[4], found[4])
local marked = reset or floor or false  -- (nil would end the answer's table there)
local n = tonumber(now or '0')
if n == seen then return {'OK', n, {}, {}, marked, false, born, 0} end
if n - seen > far or n < seen then return {'FAR', n, {}, {}, marked, false, born, 0} end
local after = string.format('(%d-0', math.max(seen, 0))
local entries = redis.call('XREVRANGE', KEYS[1], '+', after, 'COUNT', string.format('%d', n - seen))
return {'OK', n, named(entries, KEYS[7], KEYS[6]), {}, marked, false, born, 0}
"""
)

# Everything, as of one instant: meta, rows, their order, the commit number, when meta was
# written, Redis's clock and the latest reset's mark (or the journal's floor, as CHANGES). A
# script, not a MULTI: Redis Cluster clients cannot route TIME (it has no key) inside a
# transaction. `no-writes`: a full Redis still lets a worker read.
EVERYTHING = """#!lua flags=no-writes
local meta, rows, order, commits, at = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
return {redis.call('GET', meta), redis.call('HGETALL', rows), redis.call('ZRANGE', order, 0, -1),
  redis.call('GET', commits), redis.call('GET', at), redis.call('TIME'),
  redis.call('GET', KEYS[6]) or redis.call('GET', KEYS[7]), redis.call('GET', KEYS[8])}
"""

# Give the lease back, if it is still ours, and say so on the handoff channel when a worker
# waits for it (`wants`, which keeps its place ARGV[4] ms more at most: GRACE_MS). Only
# the lease is a declared key: half-way through a reshard of the sandbox's slot
# (redis_cluster.py) Redis runs a script there only if it holds every key the script names,
# and `wants` is rarely there, so a release naming it would wait for the reshard to end (and
# every worker's writes with it). The one in line and the channel are named in ARGV and
# reached with pcall: where they cannot be, no wake-up goes, and the waiter's fallback try
# (redis_handoff.py) finds the lease free. `allow-oom`: it only deletes, shortens a TTL and
# publishes, which take no memory, so a full Redis runs it (else a lease taken before Redis
# filled up would hold every worker's writes until it ran out).
UNLOCK = """#!lua flags=allow-oom
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.pcall('EXISTS', ARGV[2]) == 1 then
  redis.pcall('PEXPIRE', ARGV[2], ARGV[4], 'LT')
  redis.pcall('SPUBLISH', ARGV[3], 'r' .. ARGV[1])
end
return 1
"""


# A block of request numbers (core/requestids.py): a HINCRBY of one of two fields, which takes
# no memory once the field is there, so a full Redis runs it (`allow-oom`) and the request ids
# of the reads it still answers stay unique across workers. With it, the counter's birth mark
# (`born`: a random name, ARGV[3], of the call that found no counter): a worker that gets
# another than it first got knows the counter was lost since (FLUSHALL, a Redis restarted
# without its data) and that blocks granted now may be ones granted before; and never below
# ARGV[4] (the highest this worker was granted), so that the count comes back past what it
# knew.
RESERVE = """#!lua flags=allow-oom
local born = redis.call('HGET', KEYS[1], 'born')
if not born then
  born = ARGV[3]
  redis.call('HSET', KEYS[1], 'born', born)
end
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
end
return {redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]), born}
"""
# The scripts Redis refuses while full: their answers say whether it is (`RedisStore.full`).
ROOMY = frozenset({"write", "changes", "peek", "journal"})
