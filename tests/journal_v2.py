"""The journal scripts of the version before per-organization streams (session 12: one
`journal-v2` stream for every organization), copied as they were, for the upgrade and rollback
tests (test_journal_stream.py): what that version wrote must be read by this one, and what
this one writes must not stop that one."""

CHUNK = 256  # journal entries at most in one stream entry
# The Lua function every script that appends to the journal has (redis_scripts.py's, and
# APPEND): the entries ARGV[from..to] numbered on from the counter `s`, appended to the stream
# `j` in stream entries of up to CHUNK journal entries each, fields `n` (the number of the first)
# then `e` once per entry. A stream entry's ID is its last entry's number, so that the stream
# keeps exactly the stream entries that hold one of the newest `cap` journal entries (MINID):
# one INCRBY and one XADD a round trip, instead of two commands an entry. A stream ahead of its
# counter (only an edited Redis: both change in the same scripts) is dropped rather than
# refusing every append after it. The entries up to ARGV[checked] are late ones: those whose
# position (their JSON starts `[[position],`: `_encode`) is below the floor `f` (a global
# reset's commit, when there was one) were answered before that reset, and are dropped; the
# ones after `checked` go with the commit that holds their answers. An entry of an organization
# (`[[position,"org"],`) is numbered among that organization's too, on from the counter kept in
# the hash `orgs` (`journal-seq:org`, a field an organization; cleared with `s`), and that
# number is its field's name, `e<n>` (what a tenant reads as `sequence`, core/journal.py; a
# reader of a version before reads the values alone, and `entries` puts it third in the entry's
# head). Every key a script touches comes in KEYS, none is built here: Redis Cluster routes a
# script, and a proxy checks it, by its declared keys (tests/redis/test_declared_keys.py).
JOURNAL = f"""
-- The field name of each of `kept`'s entries: `e`, or for an entry of an organization `e` and
-- its number among that organization's (one HINCRBY an organization a round trip, by how many
-- it has here), so that the entry itself is sent on as it came, never copied.
local function numbered(orgs, kept)
  local names, wanted, order = {{}}, {{}}, {{}}
  for i = 1, #kept do
    local o = string.match(kept[i], '^%[%[%d+,"([^"\\]*)"%]')
    names[i] = o or false
    if o then
      if not wanted[o] then order[#order + 1] = o end
      wanted[o] = (wanted[o] or 0) + 1
    end
  end
  local next = {{}}
  for _, o in ipairs(order) do
    local last = redis.pcall('HINCRBY', orgs, o, wanted[o])
    if type(last) == 'table' then  -- not a hash of counters (an edited Redis; so on the
      redis.call('DEL', orgs)       -- first one): numbered anew
      last = redis.call('HINCRBY', orgs, o, wanted[o])
    end
    next[o] = last - wanted[o]
  end
  for i = 1, #kept do
    local o = names[i]
    if o then
      next[o] = next[o] + 1
      names[i] = 'e' .. next[o]
    else
      names[i] = 'e'
    end
  end
  return names
end
local function journal(j, s, orgs, f, cap, from, to, checked)
  local floor = 0
  if from <= math.min(to, checked) then floor = tonumber(redis.call('GET', f) or '0') or 0 end
  local kept = {{}}
  for i = from, to do
    local e = ARGV[i]
    local late = i <= checked and floor > 0
    if not late or (tonumber(string.match(e, '^%[%[(%d+)')) or floor) >= floor then
      kept[#kept + 1] = e
    end
  end
  local names = numbered(orgs, kept)
  local at = 1
  while at <= #kept do
    local upto = math.min(#kept, at + {CHUNK - 1})
    local last = redis.call('INCRBY', s, upto - at + 1)
    local oldest = math.max(0, last - cap + 1)
    local entry = {{j, 'MINID', '=', oldest, last .. '-0', 'n', last - upto + at}}
    for i = at, upto do
      entry[2 * (i - at) + 8], entry[2 * (i - at) + 9] = names[i], kept[i]
    end
    if type(redis.pcall('XADD', unpack(entry))) == 'table' then
      redis.call('DEL', j)
      redis.call('XADD', unpack(entry))
    end
    at = upto + 1
  end
end
-- A worker numbers the entries it sends (its own numbers, not the journal's) and its `mark`
-- holds the last it appended: a round trip whose answer was lost may have run, and what it
-- carried goes again with the next one. `appended`: how many of the `count` entries from
-- number `n` on are in the journal already; `sent`: they all are now (the mark lasts a day
-- after a worker's last entry).
local function appended(mark, n, count)
  if count == 0 then return 0 end
  local done = tonumber(redis.call('GET', mark) or '-1')
  return math.min(count, math.max(0, done - n + 1))
end
local function sent(mark, n, count)
  local last = n + count - 1
  if count > 0 and last > tonumber(redis.call('GET', mark) or '-1') then
    redis.call('SET', mark, last, 'PX', 86400000)
  end
end
"""

APPEND = f"""#!lua
{JOURNAL}
local n, count = tonumber(ARGV[2]), #ARGV - 2
local from = 3 + appended(KEYS[3], n, count)
journal(KEYS[1], KEYS[2], KEYS[5], KEYS[4], tonumber(ARGV[1]), from, #ARGV, #ARGV)
sent(KEYS[3], n, count)
return count
"""

# A reset's clearing outside a group's commit (a journal no gate holds): the streams and their
# counters go (KEYS[5]: the organizations'), and the reset's commit (ARGV[1]) becomes the
# floor. `allow-oom`: it frees memory.
CLEAR = """#!lua flags=allow-oom
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
redis.call('SET', KEYS[4], ARGV[1])
"""

# The newest `ARGV[1]` stream entries of the journal, and of the journal an older version kept
# (one entry a stream entry, under `journal`): read together until that one is cleared.
READ = """#!lua flags=no-writes
return {redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1]),
  redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[1])}
"""
