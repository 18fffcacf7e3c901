"""Which settings a shared sandbox is served with, and which workers serve it now.

Every worker of a sandbox must run with the same `--seed`, `--clock`, `--speed`,
`--progression` and `--fixtures`: each keeps its own clock and fixtures over the shared state,
and the first write of a worker started with others moved every worker's clock (a wall clock at
speed 60 joining a virtual sandbox moved it 43 minutes). So must `--chaos` (background
faults), `--strict` (a response the spec does not describe is a 500, or is sent),
`--journal-bodies` (what `/_mock/requests` keeps) and `--admin-token` (401, or an open
control plane): each is the worker's own, and two serves that differ in one answer one request
two ways. `--host`, `--port`, `--workers` and `--log-requests` are not compared: they say where
and by how many processes the sandbox is served, and what one process prints. So the
sandbox records them
(`serving`, a hash) beside a liveness mark of each worker that serves it (`workers`, a sorted
set: worker -> when its mark runs out, by Redis's clock):

- a worker starting (`CLAIM`) drops the marks that ran out; if any is left and the recorded
  settings differ from its own, it is refused (`refusal`: one sentence for `serve` to print);
  when none is left its settings are recorded (the new ones are taken: a restart with new
  flags); either way its mark is set. The refusal counts the live processes that answer
  requests: the main process of `serve --workers N` keeps a mark of its own, which counts only
  until one of its workers has one;
- a serving worker renews its mark every BEAT_S from its idle timer (http/shared.py
  `_follow`), through the pipe: no round trip on a request's path. `BEAT` re-records the
  settings if they are gone (the database was flushed), and reports, without renewing, when
  another serve's settings replaced them (this worker's mark ran out while it was stalled);
- a worker that stops removes its mark; one killed with `kill -9` counts as live until its
  mark runs out, LIVE_MS after its last beat.

"The same" is the same value, not the same spelling: the speed as a number (60 = 60.0), the
fixtures and the chaos profile by a digest of what was loaded (not their path: two copies of
one file are the same, one file edited between two starts is not), the admin token by a digest
keyed with the sandbox's name (Redis never holds it, and a refusal says only that it differs).
`--clock` names a mode (wall or virtual); the instant is the sandbox's state, which every
worker reads, so it is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping

LIVE_MS = 15_000  # a worker's mark runs out this long after its last beat ...
BEAT_S = 5.0  # ... which comes this often: a mark outlives two missed beats

# The settings compared, in the order a refusal names them, and how each is shown.
COMPARED = (
    *("seed", "clock", "speed", "progression", "fixtures"),
    *("chaos", "strict", "journal-bodies", "admin-token"),
)
# Recorded beside them, for the message: not compared.
SHOWN = ("fixtures-from", "chaos-from", "admin-token-from")

# What CLAIM and BEAT share: Redis's clock (ms), their keys and arguments, and whether the
# recorded settings differ from this worker's.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local serving, workers, me, live_ms, n = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]),
  tonumber(ARGV[3])
local function differs()
  for i = 4, 3 + 2 * n, 2 do
    if redis.call('HGET', serving, ARGV[i]) ~= ARGV[i + 1] then return true end
  end
  return false
end
"""

# KEYS: serving, workers. ARGV: worker, LIVE_MS, n, then n compared (name, value) pairs, then
# the shown ones. -> {'OK'} or {'OTHER', the live processes that answer requests, ms until
# the last mark runs out, the recorded settings (HGETALL)}. allow-oom: a worker may start on
# a full Redis. A mark is "LEADER WORKER" (RedisStore.member): a serve of one process, or
# the main process of `serve --workers N`, names itself twice; that main process answers no
# request, and counts only while none of its workers has a mark (it stands for them).
CLAIM = (
    "#!lua flags=allow-oom"
    + _PRELUDE
    + """
local function answering()
  local leads, led, count = {}, {}, 0
  for _, mark in ipairs(redis.call('ZRANGE', workers, 0, -1)) do
    local space = string.find(mark, ' ', 1, true)
    count = count + 1
    if space then
      local leader = string.sub(mark, 1, space - 1)
      if leader == string.sub(mark, space + 1) then leads[leader] = true
      else led[leader] = true end
    end
  end
  for leader in pairs(leads) do
    if led[leader] then count = count - 1 end
  end
  return count
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now)
redis.call('ZREM', workers, me)
local live = redis.call('ZCARD', workers)
if live > 0 and redis.call('EXISTS', serving) == 1 then
  if differs() then
    local last = redis.call('ZRANGE', workers, -1, -1, 'WITHSCORES')
    return {'OTHER', answering(), tonumber(last[2]) - now, redis.call('HGETALL', serving)}
  end
else  -- no one serves it: this worker's settings are taken
  redis.call('DEL', serving)
  redis.call('HSET', serving, unpack(ARGV, 4))
end
redis.call('ZADD', workers, now + live_ms, me)
return {'OK'}
"""
)

# The same keys and arguments: renew this worker's mark unless other settings were recorded
# since (-> 'OTHER', the mark not renewed); re-record ours if none are (a flushed database).
BEAT = (
    "#!lua flags=allow-oom"
    + _PRELUDE
    + """
if redis.call('EXISTS', serving) == 1 then
  if differs() then return 'OTHER' end
else
  redis.call('HSET', serving, unpack(ARGV, 4))
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now)
redis.call('ZADD', workers, now + live_ms, me)
return 'OK'
"""
)


def arguments(ident: str, settings: Mapping[str, str]) -> list[str]:
    """CLAIM's and BEAT's arguments for this worker's `settings` (COMPARED and SHOWN)."""
    args = [ident, str(LIVE_MS), str(len(COMPARED))]
    for name in COMPARED:
        args += [name, settings[name]]
    for name in SHOWN:
        args += [name, settings.get(name, "")]
    return args


def _printable(text: str) -> str:
    """A path as one line of a message, whatever characters it holds."""
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def _shown(name: str, settings: Mapping[str, str]) -> str:
    """A recorded value as a refusal shows it (recorded by another serve, perhaps of another
    version, or written by hand: anything is shown, nothing raises)."""
    value = settings.get(name)
    if value is None:
        return "(not recorded)"
    if name == "speed":
        try:
            return f"{float(value):g}"
        except ValueError:
            return _printable(value)
    if name in ("fixtures", "chaos") and value != "none":
        source = _printable(settings.get(f"{name}-from") or "?")
        return f"{source} (content {_printable(value[:12])})"
    return _printable(value)


def _token(digest: str) -> str:
    return "none" if digest == "none" else "a token"


def _differs(name: str, found: Mapping[str, str], ours: Mapping[str, str]) -> str:
    if name != "admin-token" or found.get(name) is None:
        if name == "admin-token":  # (recorded by an older version)
            return f"--admin-token (not recorded) (asked for {_token(ours[name])})"
        return f"--{name} {_shown(name, found)} (asked for {_shown(name, ours)})"
    if "none" in (found.get(name), ours[name]):  # whether one is set says nothing of it
        return f"--admin-token {_token(found[name])} (asked for {_token(ours[name])})"
    said = "--admin-token: another token (compared by a keyed digest, neither is shown)"
    if ours.get("admin-token-from") == "generated":
        said += "; this serve generated its own: give it theirs (their banner's) with --admin-token"
    return said


def refusal(
    name: str, live: int, wait_ms: int, found: Mapping[str, str], ours: Mapping[str, str]
) -> str:
    """The one sentence `serve` prints when the sandbox is served with other settings."""
    differing = [
        _differs(setting, found, ours)
        for setting in COMPARED
        if found.get(setting) != ours[setting]
    ]
    workers = f"{live} live worker{'s' if live != 1 else ''}"  # (processes that answer)
    return (
        f"the sandbox {name!r} is served by {workers} with other settings: "
        f"{', '.join(differing)}; stop those workers (one killed with kill -9 counts as live "
        f"until its mark runs out, within {max(0, wait_ms) / 1000:.0f} s), start this one with "
        "their flags, or use another sandbox (?sandbox=NAME) or database in --state"
    )


def decoded(pairs: list[bytes]) -> dict[str, str]:
    """HGETALL's flat answer as a dict."""
    texts = [p.decode() for p in pairs]
    return dict(zip(texts[::2], texts[1::2], strict=True))
