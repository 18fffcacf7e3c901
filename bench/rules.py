"""µs per `Rules.apply` as the rules a sandbox holds grow (timeit, in process, no HTTP).

    .venv/bin/python bench/rules.py                      # this checkout
    .venv/bin/python bench/rules.py --root ../other      # another checkout's core, same cases

Thirty organizations. A case's rules: the operator's, each naming one organization in turn (as
a tenant-facing sandbox's operator steers one tenant), then each organization's own (at most
100 each, as the bounds allow). `wildcard` cases give the operator's rules no organization, the
index's worst case: every request must check them. No rule matches the request (its path), so
nothing is used up and every round measures the same work: checking the candidates.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

ORGS = [f"org_{n:02d}" for n in range(30)]


def build(root: Path, operator: int, tenant_each: int, wildcard: bool) -> tuple[object, object]:
    sys.path.insert(0, str(root))
    from layers_mock_server.core.prefer import NONE
    from layers_mock_server.core.rules import RequestFacts, Rules

    rules = Rules()
    for n in range(operator):
        match = {"path": "/v1/never/*", "operationId": "getJob"}
        if not wildcard:
            match["organizationId"] = ORGS[n % len(ORGS)]
        rules.add({"match": match, "fault": "503"})
    for org in ORGS:
        for _ in range(tenant_each):
            rules.add(
                {"match": {"organizationId": org, "path": "/v1/never/*"}, "fault": "503"}, org
            )
    facts = RequestFacts("GET", "/v1/jobs/job_1", "getJob", ORGS[7], "prj_1", 1, ORGS[7])
    return (lambda: rules.apply(7, facts, NONE)), rules


CASES = [  # name, operator's rules, each organization's, operator's rules name no organization
    ("0 rules", 0, 0, False),
    ("10 rules (operator's)", 10, 0, False),
    ("1,000 rules (operator's)", 1_000, 0, False),
    ("4,000 rules (1,000 + 30 x 100)", 1_000, 100, False),
    ("1,000 rules (operator's, wildcard)", 1_000, 0, True),
    ("4,000 rules (1,000 wildcard + 30 x 100)", 1_000, 100, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    for name, operator, tenant_each, wildcard in CASES:
        call, _ = build(args.root.resolve(), operator, tenant_each, wildcard)
        number = 20_000 if operator <= 10 else 300
        best = min(timeit.repeat(call, number=number, repeat=5)) / number
        print(f"{name:<42} {best * 1e6:10.3f} µs")


if __name__ == "__main__":
    main()
