"""The journal scripts of the version before the server-wide total on Redis (session 14:
per-organization streams, IDs `<org number>-0`, no bytes counted), copied as they were, for
the upgrade and rollback tests of the total (test_journal_total.py)."""

CHUNK = 256  # journal entries at most in one stream entry

JOURNAL = f"""
local function streams(from, base)  -- also: the last of KEYS it took
  local of, key, k = {{}}, {{['~-'] = KEYS[base]}}, base
  for i = from, #ARGV do
    local o = string.match(ARGV[i], '^%[%[%d+,"([^"\\]*)"%]') or '~-'
    of[i] = o
    if not key[o] then
      k = k + 1
      key[o] = KEYS[k]
    end
  end
  return of, key, k
end
local function journal(of, key, s, orgs, f, cap, from, to, checked)
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
  local g = redis.call('INCRBY', s, #kept) - #kept
  local by, order = {{}}, {{}}
  for n, i in ipairs(kept) do
    local o = of[i]
    local mine = by[o]
    if not mine then
      mine = {{}}
      by[o] = mine
      order[#order + 1] = o
    end
    mine[#mine + 1] = g + n
    mine[#mine + 1] = ARGV[i]
  end
  for _, o in ipairs(order) do
    local mine, j = by[o], key[o]
    local count = #mine / 2
    local last = redis.pcall('HINCRBY', orgs, o, count)
    if type(last) == 'table' then  -- not a hash of counters (an edited Redis; so on the
      redis.call('DEL', orgs)       -- first one): numbered anew
      last = redis.call('HINCRBY', orgs, o, count)
    end
    local first = last - count + 1
    if first == 1 then redis.call('DEL', j) end
    local at = 1
    while at <= count do
      local upto = math.min(count, at + {CHUNK - 1})
      local id = first + upto - 1
      local entry = {{j, 'MINID', '=', math.max(0, id - cap + 1), id .. '-0', 'n', first + at - 1}}
      for i = at, upto do
        entry[#entry + 1] = mine[2 * i - 1]
        entry[#entry + 1] = mine[2 * i]
      end
      if type(redis.pcall('XADD', unpack(entry))) == 'table' then
        redis.call('DEL', j)
        redis.call('XADD', unpack(entry))
      end
      at = upto + 1
    end
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
local of, key = streams(3, 6)  -- KEYS[6..]: the streams (KEYS[1], the journal of the version
journal(of, key, KEYS[2], KEYS[5], KEYS[4], tonumber(ARGV[1]), from, #ARGV, #ARGV)  -- before)
sent(KEYS[3], n, count)
return count
"""
