"""The mutation study: deliberately broken deployments, one clause each.

Each deployment is the faithful mock behind one rewrite (rewrite.py): a plausible bug a team
could ship (an off-by-one in pagination, a cancel that answers 202 for a finished job, a replay
with a fresh body...). The suite must FAIL each on the clause named with it, over HTTP; the
unwrapped mock must pass. That is how the checks themselves are tested, the way Schemathesis
tests its checks on planted bugs. The deployments live in four modules by contract area and
register here with `@breaks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.rewrite import Ctx, Req, Resp, Rewrite


@dataclass(frozen=True)
class Broken:
    name: str
    clause: str  # the clause it must FAIL
    doc: str
    on_request: Callable[[Req, Ctx], Resp | None] | None = None
    on_response: Callable[[Req, Resp, Ctx], None] | None = None


BROKEN: dict[str, Broken] = {}


def breaks(clause: str, *, on: str = "response") -> Callable[[Any], Any]:
    """Register the decorated hook as a broken deployment named after it."""

    def register(fn: Any) -> Any:
        name = fn.__name__.replace("_", "-")
        doc = " ".join((fn.__doc__ or "").split())
        if name in BROKEN:
            raise ValueError(f"two broken deployments named {name}")
        hooks = {"on_request": fn} if on == "request" else {"on_response": fn}
        BROKEN[name] = Broken(name, clause, doc, **hooks)
        return fn

    return register


def broken(name: str, app: Any) -> Rewrite:
    entry = BROKEN[name]
    return Rewrite(app, entry.on_request, entry.on_response)


def _load() -> None:
    from conformance import broken_auth, broken_jobs, broken_rest, broken_surface  # noqa: F401


_load()
