"""Every key a Redis script touches is one it declared in KEYS: Redis asks it of every script
("all names of keys that a script accesses must be explicitly provided as input key
arguments", EVAL), and Redis Cluster routes a script, and a proxy checks it, by those alone. A
name built inside the script (`KEYS[3] .. ':org'`) worked only because it shares the sandbox's
hash tag; a proxy that checks keys refuses it, and a reshard half-way through the slot would
not hold it.

The check runs every script of the store through a test build of itself: each `redis.call`
and `redis.pcall` first asks Redis which of its arguments are keys (COMMAND GETKEYS: Redis's own
key specs, no table kept here; a shard channel, SPUBLISH's first argument, counts too: a
cluster routes it as a key) and logs any not in KEYS to the server's log, then runs the command
as it was. Nothing else changes: the same commands, flags and answers, so the sandbox works as
it does in production, and the test reads every undeclared key at once instead of the first
refusal's 503. (MONITOR was the other way: it shows a script's commands in an order that
changed between Redis versions, quoted in a form to parse again, and names no script.)

The workload reaches each script, and in each the paths that touch a journal key: a tenant's
entries (numbered among its organization's), a tenant's reset (its marks), a global reset in a
commit (clears the journal) and outside one (CLEAR), a catch-up while Redis is full, a worker
opening a sandbox another made, a liveness beat.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis
from every_store import OPERATOR, Servers
from grouped import CREATE, Worker
from redisd import RedisServer, started
from support import FULL, GLOBEX, auth

from layers_mock_server.http import shared
from layers_mock_server.stores import redis as redis_store
from layers_mock_server.stores import redis_journal

# The scripts a RedisStore registers, by their names in stores/redis.py.
SCRIPTS = (
    *("WRITE", "CHANGES", "CHANGES_FULL", "UNLOCK", "EVERYTHING", "RESERVE"),
    *("APPEND", "READ_ORG", "ORGS", "READ_ALL", "CLEAR", "ORG_MARKS", "CLAIM", "BEAT"),
    *("SIZES", "SHED", "FLUSH_ASK", "FLUSH_ACK", "PEEK"),
)
# Keys a script reaches through ARGV on purpose, by their place in ARGV. UNLOCK names only the
# lease: the one in line and the handoff channel, reached with pcall, would make a release
# wait out a reshard of the slot (redis_scripts.py UNLOCK).
THROUGH_ARGV = {"UNLOCK": (2, 3)}
RUNS = itertools.count()

# After the shebang line of the script under test (so its flags stay those Redis reads).
CHECK = """
local declared, real = {}, redis
for _, k in ipairs(KEYS) do declared[k] = true end
for _, i in ipairs({%(argv)s}) do declared[ARGV[i]] = true end
real.log(real.LOG_WARNING, '%(tag)s ran %(name)s')
local function check(cmd, ...)
  if select('#', ...) == 0 then return end
  local named = {...}
  if string.upper(cmd) ~= 'SPUBLISH' then
    named = real.pcall('COMMAND', 'GETKEYS', cmd, ...)
    if named.err then return end  -- none of its arguments is a key (TIME)
  end
  for i, k in ipairs(named) do
    if string.upper(cmd) == 'SPUBLISH' and i > 1 then break end
    if not declared[k] then
      real.log(real.LOG_WARNING, '%(tag)s undeclared %(name)s ' .. cmd .. ' ' .. k)
    end
  end
end
local redis = setmetatable({
  call = function(cmd, ...) check(cmd, ...) return real.call(cmd, ...) end,
  pcall = function(cmd, ...) check(cmd, ...) return real.pcall(cmd, ...) end,
}, {__index = real})
"""


def checked(script: str, name: str, tag: str) -> str:
    """The script with the check ahead of its body."""
    shebang, newline, body = script.partition("\n")
    assert shebang.startswith("#!lua") and newline, name
    argv = ", ".join(str(i) for i in THROUGH_ARGV.get(name, ()))
    return shebang + CHECK % {"argv": argv, "tag": tag, "name": name} + body


class Report:
    """What the checked scripts logged (`tag` apart from every other run's)."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.tag = f"keys-check-{next(RUNS)}"

    def read(self) -> tuple[set[str], list[str]]:
        """(the scripts that ran, each undeclared key a command touched: "SCRIPT CMD key"),
        once the server logged everything before now: a line logged last, waited for."""
        end = f"{self.tag} end"
        with redis.Redis.from_url(self.server.url) as client:
            client.eval(f"redis.log(redis.LOG_WARNING, '{end}')", 0)
        assert self.server.wait_for_log(end, timeout=30), end
        said = [line.split(self.tag + " ", 1)[1].strip() for line in self.server.logged(self.tag)]
        ran = {line.split()[1] for line in said if line.startswith("ran ")}
        return ran, sorted({line.split(" ", 1)[1] for line in said if line.startswith("undecl")})


@pytest.fixture(scope="module")
def own() -> Iterator[RedisServer]:
    """A server of the module's own: the test fills it up (maxmemory), and reads its log."""
    with started() as server:
        yield server


@pytest.fixture
def report(own: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Report:
    """Every script a RedisStore opened from now on registers is checked."""
    made = Report(own)
    for name in SCRIPTS:
        monkeypatch.setattr(redis_store, name, checked(getattr(redis_store, name), name, made.tag))
    monkeypatch.setattr(shared, "FOLLOW_S", 3600.0)  # no catch-up the test does not make
    monkeypatch.setattr(shared, "LINGER_S", 0.0)
    monkeypatch.setattr(shared, "IDLE_S", 0.0)
    monkeypatch.setattr(redis_journal, "FLUSH_S", 3600.0)  # entries go with round trips
    return made


def test_the_check_names_each_undeclared_key_and_only_those(own: RedisServer) -> None:
    report = Report(own)
    script = checked(
        """#!lua flags=no-writes
redis.call('GET', KEYS[1])
redis.pcall('MGET', KEYS[1], ARGV[1])
redis.call('EXISTS', KEYS[1] .. ':derived')
redis.call('TIME')
return redis.pcall('GET', ARGV[2])
""",
        "PROBE",
        report.tag,
    )
    with redis.Redis.from_url(own.url) as client:
        assert client.eval(script, 1, "{p}:a", "{p}:b", "{p}:c") is None  # ran as it was
    ran, undeclared = report.read()
    assert ran == {"PROBE"}
    assert undeclared == ["PROBE EXISTS {p}:a:derived", "PROBE GET {p}:c", "PROBE MGET {p}:b"]


def test_every_script_touches_only_the_keys_it_declares(report: Report) -> None:
    url = report.server.sandbox()
    first = Worker(url, admin_token=OPERATOR)  # makes the sandbox: CLAIM, CHANGES, WRITE
    second = Worker(url, admin_token=OPERATOR)  # reads it whole: EVERYTHING, UNLOCK
    workers = [first, second]
    try:
        served = Servers(workers, OPERATOR)
        for worker in workers:  # a journal past its total at once: SIZES, SHED
            worker.store.journal_total = 1
        for key in (FULL, GLOBEX, FULL, GLOBEX):  # a tenant's entries: RESERVE, APPEND
            assert served("GET", "/v1/whoami", key)[0] == 200
        # an entry waits for the next round trip (no FLUSH_S timer): the create's lease
        # (CHANGES) takes it along, and its commit (WRITE) the create's own
        [(status, _)] = first.together(("GET", "/v1/whoami", auth(GLOBEX), None))
        assert status == 200
        [(status, _)] = first.together(("POST", CREATE, auth(FULL), {}))
        assert status == 202
        assert first.trips[-2:] == ["lock", "write"]
        assert served("POST", "/_mock/reset", FULL, {})[0] == 200  # ORG_MARKS, WRITE
        assert served("GET", "/_mock/requests", FULL)[0] == 200  # READ_ORG
        assert served("GET", "/_mock/requests", None)[0] == 200  # ORGS, READ_ALL
        assert served("POST", "/_mock/reset", None, {})[0] == 200  # WRITE clearing the journal
        assert served("GET", "/v1/whoami", GLOBEX)[0] == 200  # CHANGES appending it
        first.store.journal_clear()  # CLEAR: a global reset no gate holds
        with redis.Redis.from_url(report.server.url) as operator:
            operator.config_set("maxmemory-policy", "noeviction")
            operator.config_set("maxmemory", "1")  # full: CHANGES refused, CHANGES_FULL
            try:
                assert served("GET", "/v1/whoami", FULL)[0] == 200
            finally:
                operator.config_set("maxmemory", "0")
        assert served("GET", "/v1/whoami", FULL)[0] == 200

        async def beat() -> object:  # BEAT (through the pipe: on the worker's loop)
            return await first.store.beat()

        assert first.loop.run_until_complete(beat()) == b"OK"
        for worker in workers:  # no script registered but the checked ones
            for script in worker.store._scripts.values():
                assert report.tag in script.script, script.script[:80]
    finally:
        for worker in workers:
            worker.close()
    ran, undeclared = report.read()
    assert ran == set(SCRIPTS)
    assert undeclared == [], "\n".join(undeclared)
