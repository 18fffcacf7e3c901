"""The latest reset's mark lives in Redis (`reset-mark`, written with the reset's commit), so
every worker refuses a later one (`GET /_mock/requests?after=`). A sandbox whose resets an
older version made has no such key: its global resets are known by the journal's floor (their
commits), so a mark one of them handed out is still taken."""

from __future__ import annotations

import redis
from grouped import Worker
from redisd import RedisServer


def _after(worker: Worker, mark: int) -> tuple[int, object]:
    async def run() -> tuple[int, object]:
        return await worker.call("GET", "/_mock/requests", {}, None, query=f"after={mark}")

    return worker.loop.run_until_complete(run())


def test_a_mark_an_older_version_handed_out_is_still_taken(redis_server: RedisServer) -> None:
    url = redis_server.sandbox()
    older = Worker(url)
    try:
        [(status, reset)] = older.together(("POST", "/_mock/reset", {}, None))
        assert status == 200
    finally:
        older.close()
    mark = reset["mark"]
    client = redis.Redis.from_url(redis_server.url)
    sandbox = url.rsplit("sandbox=", 1)[1]
    assert client.delete(f"{{lm:{sandbox}}}:reset-mark") == 1  # as an older version left it
    worker = Worker(url)
    try:
        status, listed = _after(worker, mark)
        assert status == 200, listed
        status, refused = _after(worker, mark + 5)
        assert status == 422, refused
    finally:
        worker.close()
