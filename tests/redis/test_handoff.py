"""The write lease is handed to a waiting worker when it is given back (stores/redis_handoff.py),
not found by a poll: the release is published on the sandbox's handoff channel, and the worker
in line tries again as soon as it hears it.

The waiting worker here is a whole server (app, store, event loop, thread); the one holding the
lease is a bare store the test drives, so that the test says when the lease goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from handoffs import ANSWER_S, CREATE, Waiter, listening, served
from redisd import RedisServer
from support import FULL, HTTP_TIMEOUT_S, auth

from layers_mock_server.core.store import Batch
from layers_mock_server.http import shared
from layers_mock_server.stores import redis_handoff
from layers_mock_server.stores.redis import RedisStore


class _Waits(list[tuple["asyncio.Future[None]", bool]]):
    """A listener's waits, telling `seen` of each one that begins."""

    def __init__(self, seen: Callable[[], None]) -> None:
        super().__init__()
        self.seen = seen

    def append(self, wait: tuple[asyncio.Future[None], bool]) -> None:
        super().append(wait)
        self.seen()


def begun_waits(listeners: list[redis_handoff.Handoff], n: int) -> asyncio.Event:
    """Set once `n` waits have begun on `listeners`: a test waits for that state, not for a
    turn of the loop."""
    begun = asyncio.Event()

    def seen() -> None:
        if sum(len(listener.waiters) for listener in listeners) >= n:
            begun.set()

    for listener in listeners:
        listener.waiters = _Waits(seen)
    return begun


@pytest.fixture
def holder(sandbox: str) -> Iterator[RedisStore]:
    store = RedisStore(sandbox)
    yield store
    store.close()


@pytest.mark.parametrize("release", ["unlock", "write"])
def test_a_waiting_worker_takes_the_lease_one_try_after_it_is_given_back(
    sandbox: str, holder: RedisStore, no_poll: None, release: str
) -> None:
    """The waiter is refused once, then waits (no timer would wake it here); the holder gives
    the lease back, with a commit or alone, and the waiter's next try takes it. Polling every
    2 ms, it made a try per 2 ms of the hold, and a wait after the release."""
    waiter = Waiter(sandbox)
    with served(waiter) as (host, port):
        base = f"http://{host}:{port}"
        listening(waiter, base)
        stored = holder.open()
        assert stored is not None
        assert holder.lock() is not None
        made: list[httpx.Response] = []
        thread = waiter.create(base, made)
        assert waiter.waiting.wait(ANSWER_S)
        assert waiter.tries == [False]
        if release == "unlock":
            holder.unlock()
        else:  # a commit that gives the lease back (the state as it was)
            holder.write(Batch([], (), stored.meta))
        thread.join(ANSWER_S)
        assert [r.status_code for r in made] == [202]
        assert waiter.tries == [False, True]


def test_a_waiter_whose_holder_was_killed_takes_the_lease_once_it_runs_out(
    sandbox: str, holder: RedisStore
) -> None:
    """kill -9 of the holder: no one gives the lease back, so no release is heard; the
    waiter's fallback try (WAKE_S) takes it once it ran out. The lease is long until the
    waiter waits (a short one could run out before a loaded machine sent the first try),
    then cut to 100 ms: what is left of a dead holder's lease."""
    waiter = Waiter(sandbox)
    with served(waiter) as (host, port):
        base = f"http://{host}:{port}"
        listening(waiter, base)
        killed = RedisStore(sandbox + "&lease=60000")
        try:
            assert killed.open() is not None
            assert killed.lock() is not None
            made: list[httpx.Response] = []
            thread = waiter.create(base, made)
            assert waiter.waiting.wait(ANSWER_S)
            assert killed._client.pexpire(killed.keys["lease"], 100)
            killed.token = ""  # it dies holding the lease: nothing gives it back
        finally:
            killed.close()
        thread.join(ANSWER_S)
        assert [r.status_code for r in made] == [202]
        assert waiter.tries[0] is False and waiter.tries[-1] is True
        assert (
            len(
                httpx.get(base + CREATE, headers=auth(FULL), timeout=HTTP_TIMEOUT_S).json()["items"]
            )
            == 2
        )


def test_a_release_is_published_only_when_a_worker_waits_and_those_behind_hear_the_next_take(
    sandbox: str, unhurried: None
) -> None:
    """What the scripts say on the handoff channel: nothing while no one waits (an idle
    worker hears nothing); `w` when a worker refused is in line (a holder keeping the lease
    idle gives it back: http/shared.py IDLE_S), not when it is behind another; the release
    when one is in line; and the take by the one in line, naming the worker that was behind
    it and is in line now. (`unhurried`: no step races the place's grace after a release.)"""
    first, second, third = (RedisStore(sandbox) for _ in range(3))
    assert first.open() is None
    first.write(Batch([], (), b"1", wipe=True))
    assert second.open() is not None and third.open() is not None
    pubsub = first._client.pubsub()
    pubsub.ssubscribe(first.keys["handoff"])
    assert pubsub.get_message(timeout=ANSWER_S)["type"] == "ssubscribe"

    def said() -> int:
        count = 0
        while pubsub.get_message(timeout=0) is not None:
            count += 1
        return count

    try:
        assert first.lock() is not None
        first.unlock()  # no one waited
        assert first.lock() is not None
        first.write(Batch([], (), b"2"))  # nor here
        assert said() == 0
        assert first.lock() is not None
        assert second.lock() is None  # in line: it says so
        assert pubsub.get_message(timeout=ANSWER_S)["data"] == b"w"
        assert third.lock() is None  # behind it: it does not
        assert second.in_line and not third.in_line
        first.unlock()
        # the release, with the lease's token (its worker does not wake for its own)
        assert pubsub.get_message(timeout=ANSWER_S)["data"][:1] == b"r"
        assert third.lock() is None  # not its turn: the second is in line
        assert second.lock() is not None
        # the take, which puts the third, behind the second, in line
        assert pubsub.get_message(timeout=ANSWER_S)["data"] == b"t" + third.ident.encode()
        assert third.lock() is None and third.in_line  # so it is (and says so) ...
        assert pubsub.get_message(timeout=ANSWER_S)["data"] == b"w"
        second.write(Batch([], (), b"3"))
        assert pubsub.get_message(timeout=ANSWER_S)["data"][:1] == b"r"  # ... and hears it
        assert third.lock() is not None
        third.unlock()
    finally:
        pubsub.close()
        for store in (first, second, third):
            store.close()


@pytest.mark.parametrize("release", ["unlock", "write"])
def test_a_waiter_killed_in_line_holds_the_others_writes_no_longer_than_a_fallback_try(
    sandbox: str, release: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker refused the lease is in line for WANTS_MS (150 ms) from its last try, and no
    one else takes the lease meanwhile. Killed there, it held every other worker's writes for
    the rest of that time after the lease was given back (189 ms median from its last try to
    the other worker's 202, measured). A release now leaves the one in line GRACE_MS (a
    fallback try's WAKE_S: a live waiter tries by then even if the release was not heard);
    a longer hold still keeps its place, as each try renews it.

    The place and its grace run on Redis's clock, in real time: the test widens both (the
    grace is an argument of the releasing scripts), so that what it sees within the grace
    it checks on every run, whatever the machine's speed (flake16 checked it only when its
    steps took less than the 50 ms)."""
    assert redis_handoff.GRACE_MS == 1000 * redis_handoff.WAKE_S  # the product's grace
    monkeypatch.setattr(redis_handoff, "WANTS_MS", 600_000)
    monkeypatch.setattr(redis_handoff, "GRACE_MS", 60_000)  # shorter than the place
    holder, dead, other = (RedisStore(sandbox) for _ in range(3))
    assert holder.open() is None
    holder.write(Batch([], (), b"1", wipe=True))
    assert dead.open() is not None and other.open() is not None
    client, wants = holder._client, holder.keys["wants"]
    try:
        assert holder.lock() is not None
        assert dead.lock() is None and dead.in_line  # its last try: then it is killed
        held = client.pttl(wants)
        if release == "unlock":
            holder.unlock()
        else:
            holder.write(Batch([], (), b"2"))
        left = client.pttl(wants)
        assert held > redis_handoff.GRACE_MS  # in line for WANTS_MS from its try ...
        assert 0 < left <= redis_handoff.GRACE_MS  # ... and for GRACE_MS at most after
        assert other.lock() is None  # still its place until then
    finally:
        for store in (holder, dead, other):
            store.close()


def test_a_take_ends_the_waits_of_workers_behind_the_one_in_line_and_not_its_own(
    no_poll: None,
) -> None:
    """Workers refused in turn: the one in line waits for the release, not for a take (one
    would be a try for nothing: it is in line already); the one behind it waits on when the
    take names it (it is in line now); one further back tries again at the take, to be behind
    next."""
    handoff = redis_handoff.Handoff(lambda: None, "{lm:x}:handoff", "me")
    further = redis_handoff.Handoff(lambda: None, "{lm:x}:handoff", "other")
    handoff.listening = further.listening = True

    async def run() -> list[str]:
        woken: list[str] = []

        async def waits(name: str, listener: redis_handoff.Handoff, in_line: bool) -> None:
            await listener.wait(listener.mark(), in_line)
            woken.append(name)

        begun = begun_waits([handoff, further], 3)
        waiting = [("in line", handoff, True), ("behind", handoff, False), ("back", further, False)]
        tasks = [asyncio.create_task(waits(*w)) for w in waiting]
        await begun.wait()  # all three wait now
        for listener in (handoff, further):  # the take by the one in line names "me"
            listener._heard(take=True, promoted=listener is handoff)
        await tasks[2]
        assert woken == ["back"]
        handoff._heard()  # the release
        await asyncio.gather(*tasks)
        return woken

    assert asyncio.run(run()) == ["back", "in line", "behind"]


def test_a_take_naming_the_worker_heard_before_its_refusal_still_puts_it_in_line(
    no_poll: None,
) -> None:
    """The take that puts a worker in line follows its refusal in Redis, but its message can
    be read before the refusal's answer (two sockets): the worker waits for the release all
    the same, rather than try again for nothing (that was the third try of a handoff)."""
    handoff = redis_handoff.Handoff(lambda: None, "{lm:x}:handoff", "me")
    handoff.listening = True

    async def run() -> None:
        mark = handoff.mark()  # the try goes ...
        handoff._heard(take=True, promoted=True)  # ... the take is heard, then the refusal
        begun = asyncio.create_task(begun_waits([handoff], 1).wait())
        waiting = asyncio.create_task(handoff.wait(mark, in_line=False))
        done, _ = await asyncio.wait({begun, waiting}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {begun}  # it waits (a wait that returned at once never begins)
        handoff._heard()  # the release
        await waiting

    asyncio.run(run())


def test_a_user_whose_acl_forbids_the_handoff_channel_still_writes_and_hands_the_lease_on(
    redis_server: RedisServer,
) -> None:
    """Redis 7 gives a user made with `resetchannels` (its `acl-pubsub-default`) no channel:
    the scripts' publishes are refused there. A refused publish must not fail the script that
    made it half-way (the lease given back, or the commit applied, and an error answered):
    the write and the release go through, and the waiter finds the lease by its tries."""
    import redis

    with redis.Redis(port=redis_server.port) as admin:
        admin.execute_command("ACL", "SETUSER", "nochannel", "on", ">pw", "~*", "+@all")
        admin.execute_command("ACL", "SETUSER", "nochannel", "resetchannels")
    url = redis_server.sandbox().replace("redis://", "redis://nochannel:pw@")
    first, second = RedisStore(url), RedisStore(url)
    try:
        assert first.open() is None
        first.write(Batch([], (), b"1", wipe=True))
        assert second.open() is not None
        assert first.lock() is not None
        assert second.lock() is None  # in line: the release would be published
        first.write(Batch([], (), b"2"))  # ... and is refused, not the commit
        taken = second.lock()  # the take, whose publish is refused too
        assert taken is not None and [b.meta for b in taken.batches] == [b"2"]
        assert first.lock() is None
        second.unlock()  # so is the release's
        assert first.lock() is not None
        first.unlock()
    finally:
        first.close()
        second.close()


def test_a_listener_told_moved_again_and_again_follows_hops_times_then_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Half-way through a reshard each node may say the slot is elsewhere (MOVED): a listener
    follows at once HOPS times, then waits RECONNECT_S like after any failure, instead of
    connecting again and again as fast as the nodes answer. Here a node that answers every
    SSUBSCRIBE with MOVED naming itself."""
    monkeypatch.setattr(redis_handoff, "RECONNECT_S", 3600.0)  # no later attempt comes by time
    accepted: list[socket.socket] = []
    node = socket.create_server(("127.0.0.1", 0))
    port = node.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):  # (closed at the end)
            while True:
                conn, _ = node.accept()
                accepted.append(conn)
                said = b""
                while b"SSUBSCRIBE" not in said:  # after the handshake (HELLO, SETINFO)
                    said = conn.recv(1 << 16)
                    if not said:
                        break
                    for command in said.split(b"*")[1:]:
                        conn.sendall(answered(command))

    def answered(command: bytes) -> bytes:
        if b"HELLO" in command:
            return b"%1\r\n+proto\r\n:3\r\n"
        if b"SSUBSCRIBE" in command:
            return f"-MOVED 1 127.0.0.1:{port}\r\n".encode()
        return b"+OK\r\n"

    threading.Thread(target=serve, daemon=True).start()
    handoff = redis_handoff.Handoff(
        lambda: redis.Connection(port=port, socket_timeout=ANSWER_S),
        "{lm:x}:handoff",
        "me",
        aim=lambda said: said.startswith("MOVED"),
    )

    async def run() -> None:
        followed = asyncio.Event()
        follow, follows = handoff._follow, [0]

        def counted() -> None:
            follow()
            follows[0] += 1
            if follows[0] > redis_handoff.HOPS:
                followed.set()

        handoff._follow = counted  # type: ignore[method-assign]
        handoff.mark()  # starts the listener
        await asyncio.wait_for(followed.wait(), ANSWER_S)
        assert handoff.attempt is None and not handoff.listening  # no attempt under way ...
        handoff.mark()
        assert handoff.attempt is None  # ... nor made by the next lease try

    try:
        asyncio.run(run())
        assert len(accepted) == 1 + redis_handoff.HOPS  # the first, and HOPS at once
    finally:
        handoff.close()
        node.close()
        for conn in accepted:
            conn.close()


def test_a_worker_keeping_the_lease_idle_gives_it_back_as_soon_as_another_is_in_line(
    sandbox: str, no_poll: None, patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose last commit came back keeps the lease for its clients' next requests
    (IDLE_S, here without end); a second worker's create is refused, and its try publishes
    that it is in line: the first gives the lease back at once, and the second's next try
    takes it (no timer would wake either here). Before, a lease kept idle went back after
    LINGER_S (2 ms) whether or not anyone asked: under load, between a group's answers and
    its clients' next requests, some 60 times a second, each time with every request queued
    behind a new lease's round trip."""
    first, second = Waiter(sandbox), Waiter(sandbox)
    with served(first) as (host, port), served(second) as (other_host, other_port):
        base, other = f"http://{host}:{port}", f"http://{other_host}:{other_port}"
        listening(second, other)  # (its lease went back: IDLE_S is 0 in these tests)
        listening(first, base)
        monkeypatch.setattr(shared, "IDLE_S", 3600.0)
        made: list[httpx.Response] = []
        first.create(base, made).join(ANSWER_S)  # (heard: the lease is kept idle now)
        assert [r.status_code for r in made] == [202]
        assert first.store._client.get(first.store.keys["lease"]) is not None
        second.create(other, made).join(ANSWER_S)
        assert [r.status_code for r in made] == [202, 202]
        assert second.tries == [False, True]


def test_a_worker_writing_alone_keeps_the_lease_between_its_clients_requests(
    sandbox: str, patient: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests one after another, each sent once the last was answered: the lease taken for
    one is kept for the next (IDLE_S), not taken again for each (LINGER_S: 0 here)."""
    alone = Waiter(sandbox)
    with served(alone) as (host, port):
        base = f"http://{host}:{port}"
        listening(alone, base)  # its listener is subscribed: it would hear another ask
        monkeypatch.setattr(shared, "IDLE_S", 3600.0)
        made: list[httpx.Response] = []
        for _ in range(4):
            alone.create(base, made).join(ANSWER_S)
        assert [r.status_code for r in made] == [202] * 4
        assert alone.tries == [True]  # the first took it (the one before gave it back)
