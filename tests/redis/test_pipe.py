"""The pipe to Redis (stores/redis_pipe.py): many commands in flight on one connection, each
answer handed to its own command in order, and every way the connection can fail turned into
one StoreUnavailable for each command in flight, the next command connecting again.

Each test drives the pipe on its own event loop against a real redis-server (tests/redisd.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from blackhole import Blackhole
from grouped import Turn
from redisd import RedisServer, started

from layers_mock_server.core.store import OutcomeUnknown, Refused, StoreUnavailable
from layers_mock_server.stores.redis_pipe import Pipe

ECHO = "return ARGV[1]"
LIVENESS_S = 30.0  # a wait only a hung peer reaches


def pipe_to(server: RedisServer, timeout: float = 5.0) -> Pipe:
    client = redis.Redis.from_url(server.url)
    return Pipe(client.connection_pool.make_connection, [ECHO], "redis://test", timeout)


def run(coroutine: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coroutine)


def once(loop: asyncio.AbstractEventLoop, pipe: Pipe, *args: Any) -> Any:
    """One command through the pipe on `loop` (the pipe's, as in a worker), its answer."""

    async def call() -> Any:
        return await pipe.call(*args)

    return loop.run_until_complete(call())


@pytest.fixture
def own() -> Iterator[RedisServer]:
    """A redis-server of this test's own (it is paused, flushed or killed)."""
    with started() as server:
        yield server


def test_answers_come_back_to_their_own_commands_in_order(redis_server: RedisServer) -> None:
    pipe = pipe_to(redis_server)

    async def go() -> list[Any]:
        key = "pipe:order"
        first = pipe.call("DEL", key)
        counted = [pipe.call("INCR", key) for _ in range(500)]  # all sent before any answer
        assert not any(f.done() for f in counted)
        return [await first, *[await f for f in counted]]

    answers = run(go())
    assert answers[1:] == list(range(1, 501))
    pipe.close()


def test_every_kind_of_argument_the_store_sends_reaches_redis_as_redis_py_sends_it(
    redis_server: RedisServer,
) -> None:
    """The pipe packs with hiredis itself: text as UTF-8, numbers in decimal, bytes as they are
    (an empty one too), exactly the bytes redis-py's own packer makes of them."""
    pipe = pipe_to(redis_server)
    args = ("tëxt\x00", 7, -12, 2**40, b"\x00\xff bytes", b"", "")

    async def go() -> Any:
        return await pipe.call("EVAL", "return ARGV", 0, *args)

    answer = run(go())
    assert answer == [
        b"t\xc3\xabxt\x00",
        b"7",
        b"-12",
        b"1099511627776",
        b"\x00\xff bytes",
        b"",
        b"",
    ]
    packer = redis.Redis.from_url(redis_server.url).connection_pool.make_connection()
    assert pipe.pack(("EVAL", "return ARGV", 0, *args)) == b"".join(
        packer.pack_command("EVAL", "return ARGV", 0, *args)
    )
    pipe.close()


def test_a_command_larger_than_the_socket_takes_at_once_is_sent_whole(
    redis_server: RedisServer,
) -> None:
    pipe = pipe_to(redis_server)
    value = bytes(range(256)) * 40_000  # 10 MB: the kernel takes it in pieces

    async def go() -> Any:
        sent = pipe.call("SET", "pipe:big", value)
        small = pipe.call("STRLEN", "pipe:big")  # queued behind the unsent rest
        assert await sent == b"OK"
        return await small, await pipe.call("GET", "pipe:big")

    length, back = run(go())
    assert length == len(value) and back == value
    pipe.close()


def test_a_reply_error_fails_only_its_own_command(redis_server: RedisServer) -> None:
    pipe = pipe_to(redis_server)

    async def go() -> tuple[Any, Any]:
        wrong = pipe.call("INCR", "pipe:text")
        fine = pipe.call("PING")
        with pytest.raises(StoreUnavailable, match=r"redis://test: .*not an integer"):
            await wrong
        return await fine, await pipe.call("PING")

    redis.Redis.from_url(redis_server.url).set("pipe:text", "abc")
    assert run(go()) == (b"PONG", b"PONG")
    pipe.close()


def test_a_connection_closed_by_redis_fails_everything_in_flight_then_reconnects(
    own: RedisServer,
) -> None:
    pipe = pipe_to(own)
    loop = asyncio.new_event_loop()
    assert once(loop, pipe, "PING") == b"PONG"
    redis.Redis.from_url(own.url).execute_command("CLIENT", "PAUSE", "30000", "WRITE")

    async def in_flight() -> list[BaseException | Any]:
        calls = [pipe.call("SET", "pipe:lost", str(n)) for n in range(5)]  # sent, held by Redis
        own.kill()  # kill -9: the socket closes under them
        return await asyncio.gather(*calls, return_exceptions=True)

    failed = loop.run_until_complete(in_flight())
    assert all(isinstance(f, OutcomeUnknown) for f in failed), failed  # sent: may have run
    assert all(str(f).startswith("redis://test: ") for f in failed)
    with pytest.raises(StoreUnavailable, match="refused") as refused:  # Redis is down
        once(loop, pipe, "PING")
    assert not isinstance(refused.value, OutcomeUnknown)  # never sent
    own.start()  # the same port: the next command connects again, scripts loaded anew
    sha = redis.Redis.from_url(own.url).script_load(ECHO)
    redis.Redis.from_url(own.url).script_flush()
    assert once(loop, pipe, "EVALSHA", sha, 0, "back") == b"back"
    pipe.close()
    loop.close()


def test_no_answer_within_the_timeout_fails_everything_in_flight(own: RedisServer) -> None:
    pipe = pipe_to(own, timeout=0.2)
    other = redis.Redis.from_url(own.url)
    loop = asyncio.new_event_loop()
    assert once(loop, pipe, "PING") == b"PONG"
    other.execute_command("CLIENT", "PAUSE", "30000", "WRITE")  # writes wait up to 30 s

    async def paused() -> list[BaseException | Any]:
        writes = [pipe.call("SET", "pipe:paused", str(n)) for n in range(3)]
        return await asyncio.gather(*writes, return_exceptions=True)

    failed = loop.run_until_complete(paused())
    assert [str(f) for f in failed] == ["redis://test: Timeout reading from socket"] * 3
    other.execute_command("CLIENT", "UNPAUSE")
    assert once(loop, pipe, "SET", "pipe:paused", "again") == b"OK"
    pipe.close()
    loop.close()


@pytest.mark.parametrize("order", ["store-then-loop", "loop-then-store"])
def test_a_worker_stopped_with_commands_in_flight_logs_nothing_about_them(
    redis_server: RedisServer, order: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker stops (Ctrl-C, SIGTERM) while Redis has not answered some of its commands:
    its loop runs no more, and closing the store fails them, with no one left to look at the
    failure. asyncio must not print "Future exception was never retrieved" for each on the
    stopping worker's stderr. A `--workers` process closes its store while its loop is still
    open, a single server after closing it (cli.py `stopped`): both orders.

    The garbage of earlier tests is collected first: the collection below is there for this
    test's futures, and a task an earlier failed test left pending ("Task was destroyed but it
    is pending!") was logged inside it and failed this test too (flake16, a fresh-clone run)."""
    gc.collect()
    pipe = pipe_to(redis_server)
    loop = asyncio.new_event_loop()
    assert once(loop, pipe, "PING") == b"PONG"

    async def sent() -> list[asyncio.Future[Any]]:
        # BLPOP on an empty list: Redis holds the answer until the connection closes.
        return [pipe.call("BLPOP", "pipe:never", 0) for _ in range(2)]

    in_flight = loop.run_until_complete(sent())
    in_flight[0].add_done_callback(lambda _: None)  # as the store's are (never run now)
    if order == "loop-then-store":
        loop.close()
    pipe.close()
    loop.close()
    assert all(f.done() for f in in_flight)  # failed: anyone awaiting one is told
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        del in_flight
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_scripts_flushed_under_the_pipe_fail_one_command_then_are_loaded_again(
    redis_server: RedisServer,
) -> None:
    pipe = pipe_to(redis_server)
    sha = redis.Redis.from_url(redis_server.url).script_load(ECHO)
    loop = asyncio.new_event_loop()
    assert once(loop, pipe, "EVALSHA", sha, 0, "one") == b"one"
    redis.Redis.from_url(redis_server.url).script_flush()
    with pytest.raises(StoreUnavailable, match="NOSCRIPT"):
        once(loop, pipe, "EVALSHA", sha, 0, "two")
    assert once(loop, pipe, "EVALSHA", sha, 0, "three") == b"three"
    pipe.close()
    loop.close()


def test_each_command_in_flight_behind_a_noscript_has_its_own_reply_and_did_not_run(
    own: RedisServer,
) -> None:
    """SCRIPT FLUSH with three EVALSHAs in flight (held by CLIENT PAUSE): Redis answers each
    NOSCRIPT, so none ran: each fails as Refused (a retry is safe), not as OutcomeUnknown, and
    the scripts are loaded again ahead of the next command."""
    pipe = pipe_to(own)
    other = redis.Redis.from_url(own.url)
    sha = other.script_load(ECHO)
    loop = asyncio.new_event_loop()
    assert once(loop, pipe, "EVALSHA", sha, 0, "one") == b"one"
    other.execute_command("CLIENT", "PAUSE", "30000", "WRITE")  # EVALSHA waits in Redis

    async def flushed() -> list[BaseException | Any]:
        calls = [pipe.call("EVALSHA", sha, 0, str(n)) for n in range(3)]
        other.script_flush()
        other.execute_command("CLIENT", "UNPAUSE")
        return await asyncio.gather(*calls, return_exceptions=True)

    failed = loop.run_until_complete(flushed())
    assert all(isinstance(f, Refused) for f in failed), failed
    assert not any(isinstance(f, OutcomeUnknown) for f in failed)
    assert all("NOSCRIPT" in str(f) for f in failed)
    assert once(loop, pipe, "EVALSHA", sha, 0, "four") == b"four"
    pipe.close()
    loop.close()


def test_a_server_that_is_not_redis_fails_every_command_in_one_sentence() -> None:
    """Something that accepts the connection and answers what is not RESP."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def liar() -> None:  # greets as Redis does (HELLO, then +OK to each), then answers HTTP
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(1 << 16):
                if b"PING" in data:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                elif b"HELLO" in data:
                    conn.sendall(b"%1\r\n$5\r\nproto\r\n:3\r\n")
                else:
                    commands = sum(1 for line in data.split(b"\r\n") if line[:1] == b"*")
                    conn.sendall(b"+OK\r\n" * commands)

    thread = threading.Thread(target=liar, daemon=True)
    thread.start()
    client = redis.Redis(host="127.0.0.1", port=port, protocol=3)
    # The timeout bounds a liar that hangs: its answers come at once, but a machine that runs
    # its thread a second late (1.0 s here before) turns the protocol error into a timeout.
    pipe = Pipe(client.connection_pool.make_connection, [], "redis://liar", LIVENESS_S)

    async def go() -> list[BaseException | Any]:
        return await asyncio.gather(*[pipe.call("PING") for _ in range(3)], return_exceptions=True)

    failed = run(go())
    pipe.close()
    listener.close()
    thread.join(5)
    assert len(failed) == 3 and all(isinstance(f, StoreUnavailable) for f in failed), failed
    assert all(str(f).startswith("redis://liar: Protocol error") for f in failed), failed


def test_a_redis_that_cannot_be_reached_fails_the_command_not_the_caller() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    pipe = Pipe(client.connection_pool.make_connection, [], "redis://127.0.0.1:1/0", 1.0)

    async def go() -> None:
        future = pipe.call("PING")  # no exception here: the future holds it
        with pytest.raises(StoreUnavailable, match=r"^redis://127.0.0.1:1/0: .*refused") as no:
            await future
        assert not isinstance(no.value, OutcomeUnknown)  # never sent: it did not run

    run(go())


def test_a_connection_that_is_never_greeted_does_not_stop_the_event_loop() -> None:
    """A host that accepts the connection and never answers (a socket nothing accepts on:
    the kernel completes the TCP handshake, redis-py's greeting waits): the worker's loop goes
    on while the pipe connects, and the command fails after the pipe's timeout, as not sent."""
    listener = socket.create_server(("127.0.0.1", 0))  # listening, never accepting
    port = listener.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    pipe = Pipe(client.connection_pool.make_connection, [ECHO], "redis://hole", 0.2)

    async def go() -> bool:
        loop = asyncio.get_running_loop()
        ran: asyncio.Future[bool] = loop.create_future()
        loop.call_soon(lambda: ran.set_result(future.done()))  # the loop's next callback
        future = pipe.call("PING")
        answered_first = await ran
        with pytest.raises(StoreUnavailable, match=r"^redis://hole: .*Timeout connecting") as no:
            await future
        assert not isinstance(no.value, OutcomeUnknown)  # never sent: it did not run
        return answered_first

    assert run(go()) is False  # the loop ran something while the connection was being made
    listener.close()


def test_commands_called_while_the_connection_is_made_wait_for_it_in_order(
    redis_server: RedisServer,
) -> None:
    """A Redis slow to greet (the proxy holds the new connection): the commands called
    meanwhile wait, in order, behind the script loads, and are answered once it is made."""
    with Blackhole(redis_server.port) as hole:
        client = redis.Redis(host="127.0.0.1", port=hole.port, socket_timeout=5)
        pipe = Pipe(client.connection_pool.make_connection, [ECHO], "redis://held", 5.0)
        sha = redis.Redis.from_url(redis_server.url).script_load(ECHO)
        redis.Redis.from_url(redis_server.url).delete("pipe:held")
        hole.hold()

        async def go() -> list[Any]:
            calls = [pipe.call("INCR", "pipe:held") for _ in range(3)]
            calls.append(pipe.call("EVALSHA", sha, 0, "loaded"))
            for _ in range(5):
                await Turn()
            assert not any(c.done() for c in calls)  # none answered before Redis is reached
            hole.release()
            return [await c for c in calls]

        assert run(go()) == [1, 2, 3, b"loaded"]
        pipe.close()
