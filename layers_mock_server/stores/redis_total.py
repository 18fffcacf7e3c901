"""The journal's server-wide total on Redis: what one process does (core/journal.py
`Journal._shed`), over every organization's stream of a sandbox.

Each stream keeps its organization's newest 1,000 entries (redis_journal.py), so a hosted
sandbox with 10,000 organizations could hold 10,000 full streams (~40 GB with bodies) where one
process stops at `total_bytes` (256 MiB). The scripts that append count each stream's bytes
(the JSON of its entries) in the hash of counters, `~=<org>` (`held:newest`), and their sums
in `~=` (JOURNAL), at no round trip of their own: a few more commands in the script that
appends. One that takes the total past `total_bytes` by more than the slack beyond the newest
entries says so in its answer (`over`), and the worker then cuts, in two round trips of its
own that only a full journal costs: SIZES reads every stream's bytes, the worker finds the one
level that brings the total to 7/8 of the bound (`core.journal.common_level`, as one process),
and SHED cuts the streams above it, oldest first, each to that level and never its newest
stream entry (a quiet organization keeps its last request). Every stream SHED touches is
declared in its KEYS (the worker names them from SIZES's answer): a script finds no key by
itself (tests/redis/test_declared_keys.py). Two workers told at once both cut to about the same
level; the second finds little or nothing left above it.

A stream a version before appended to (IDs `<n>-0`) counts nothing until its entries are
trimmed: the total counts what this version appended, and holds once those are gone. A
rollback's appends are not counted (nor is what it trims of this version's: the total then
errs high, and cuts early, until the journal is cleared).
"""

from __future__ import annotations

from typing import Any

from ..core.journal import common_level, slack

# The hash of counters as it is (fields and values), for the worker to find the level.
# `no-writes`: a full Redis still answers it.
SIZES = """#!lua flags=no-writes
local found = redis.pcall('HGETALL', KEYS[1])
if found.err then return {} end
return found
"""

# Cut each stream KEYS[2..] (organization ARGV[k]: its field in the hash of counters KEYS[1])
# to the level ARGV[1] of bytes beyond its newest stream entry: its oldest stream entries go
# (XTRIM MINID to the first kept: IDs are `<org number>-<bytes>`, a number each), never the
# newest. `allow-oom`: it frees memory.
SHED = """#!lua flags=allow-oom
local function bytes_of(v)
  local h, n = string.match(v or '', '^(%d+):(%d+)$')
  return tonumber(h) or 0, tonumber(n) or 0
end
local function size(id) return tonumber(string.match(id, '%-(%d+)$')) or 0 end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then return 0 end
local level, freed = tonumber(ARGV[1]), 0
for k = 2, #KEYS do
  local j, field = KEYS[k], '~=' .. ARGV[k]
  local held, newest = bytes_of(redis.call('HGET', KEYS[1], field))
  local was = held
  if held - newest > level and redis.call('TYPE', j)['ok'] == 'stream' then
    local last = (redis.call('XREVRANGE', j, '+', '-', 'COUNT', 1)[1] or {})[1]
    local from, keep = '-', nil
    while not keep do
      local page = redis.call('XRANGE', j, from, '+', 'COUNT', 16)
      if #page == 0 then break end
      for _, e in ipairs(page) do
        if e[1] == last or held - newest <= level then
          keep = e[1]
          break
        end
        held = held - size(e[1])
        from = '(' .. e[1]
      end
    end
    if keep then
      redis.call('XTRIM', j, 'MINID', '=', string.match(keep, '^%d+'))
      held = math.max(held, newest)
      redis.call('HSET', KEYS[1], field, held .. ':' .. newest)
      freed = freed + was - held
    end
  end
end
if freed > 0 then
  local all, tops = bytes_of(redis.call('HGET', KEYS[1], '~='))
  redis.call('HSET', KEYS[1], '~=', math.max(0, all - freed) .. ':' .. tops)
end
return freed
"""

PREFIX = b"~="  # the fields of bytes in the hash of counters (JOURNAL)


def held(answer: list[Any]) -> tuple[int, int, dict[bytes, tuple[int, int]]]:
    """SIZES's answer: the total and the newest entries' bytes over every stream, and each
    organization's (its field in the hash of counters: held, newest)."""
    total = newest = 0
    each: dict[bytes, tuple[int, int]] = {}
    for name, value in zip(answer[::2], answer[1::2], strict=True):
        if not name.startswith(PREFIX):
            continue
        a, _, b = value.partition(b":")
        sizes = (int(a or 0), int(b or 0))
        if name == PREFIX:
            total, newest = sizes
        else:
            each[name[len(PREFIX) :]] = sizes
    return total, newest, each


def plan(answer: list[Any], total_bytes: int) -> tuple[int, list[bytes]]:
    """The level to cut to and the organizations above it (none: nothing to cut), as one
    process finds them (core/journal.py `Journal._shed`)."""
    total, newest, each = held(answer)
    if total <= total_bytes or total - newest <= slack(total_bytes):
        return 0, []
    cuttable = {org: h - n for org, (h, n) in each.items()}
    goal = max(0, total_bytes - slack(total_bytes) - newest)
    level = common_level(list(cuttable.values()), goal)
    return level, [org for org, c in cuttable.items() if c > level]
