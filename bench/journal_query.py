"""Milliseconds per `GET /_mock/requests` read of a full journal (1,000 entries), in-process.

Journal.query is what that route, the dashboard's live journal and `LayersMock.requests()` call;
it runs on every dashboard refresh. Prints the mean of 200 reads per filter, bodies off and on:

    .venv/bin/python bench/journal_query.py
"""

from __future__ import annotations

import functools
import timeit

from layers_mock_server.core.journal import Journal

EXCHANGE = (
    [(b"authorization", b"Bearer lp_test_acmefull_Zx81Qm4TnR7vKp2W")],
    b"{}",
    [(b"content-type", b"application/json")],
    b"{}",
)
FILTERS: list[dict[str, object]] = [
    {},
    {"method": "get", "status": 404},
    {"path": "/v1/jobs/job_99"},
    {"limit": 1},
]


def main() -> None:
    for bodies in (False, True):
        journal = Journal(bodies=bodies)
        for i in range(1000):
            method = "GET" if i % 2 else "POST"
            status = 200 if i % 3 else 404
            journal.add(
                i,
                method,
                f"/v1/jobs/job_{i}",
                "",
                status,
                f"req_{i}",
                "key_1",
                "getJob",
                None,
                EXCHANGE,
            )
        for args in FILTERS:
            read = functools.partial(journal.query, **args)  # type: ignore[arg-type]
            seconds = timeit.timeit(read, number=200) / 200
            print(f"bodies={bodies!s:5}  {args!s:36}  {seconds * 1000:.2f} ms")


if __name__ == "__main__":
    main()
