"""Server settings and the one function that turns them into an application."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .core.chaos import ChaosProfile
from .core.clock import Clock, ClockMode
from .core.errors import ApiError
from .core.fixtures import (
    DEFAULT_FIXTURES,
    FixtureError,
    Fixtures,
    load_fixtures,
    parse_fixtures,
)
from .core.jobs import Progression
from .core.journal import Journal
from .core.prefer import preference_problem  # noqa: F401 - the testing API checks prefer() with it
from .core.simulator import Simulator
from .core.store import StoreInUse, StoreUnreachable
from .deps import Deps
from .stores import make_store, shown


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 4010
    # None: the default fixtures shipped in the package; a path; or the document itself
    fixtures: Path | Mapping[str, Any] | None = None
    seed: int = 0
    clock: ClockMode = "wall"
    speed: float = 1.0
    progression: Progression = "time"
    strict: bool = False
    admin_token: str | None = None
    chaos: Path | None = None
    state: str | None = None  # "memory" (default), "sqlite:PATH" or "redis://HOST:PORT/DB"
    journal_bodies: bool = False  # keep headers and bodies in /_mock/requests (bounded)
    admin_token_generated: bool = False  # `serve` off loopback made one up (for messages)

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def check_admin_token(token: str | None) -> str | None:
    """An admin token guards nothing if a header can match it by accident: empty, blank or
    with whitespace (an `Authorization: Bearer ` header) is refused at start-up."""
    if token is not None and (
        not token or not token.isprintable() or any(c.isspace() for c in token)
    ):
        raise ValueError("--admin-token must be printable characters without spaces, not empty")
    return token


def fixtures_of(settings: Settings) -> Fixtures:
    """The fixtures to start from; a document of the wrong shape is a FixtureError too."""
    source = settings.fixtures
    try:
        if source is None:  # shipped, and tests/core/test_fixture_checks.py checks it
            return load_fixtures(DEFAULT_FIXTURES)
        from .fixturecheck import check_fixtures

        if isinstance(source, Mapping):
            return parse_fixtures(source, source="fixtures", check=check_fixtures)
        return load_fixtures(source, check=check_fixtures)
    except (TypeError, AttributeError) as exc:  # e.g. an entry that is a number, not a mapping
        name = source if isinstance(source, Path) else "fixtures"
        raise FixtureError(f"{name}: not a fixtures document ({exc})") from exc


# A token's digest is slow to compute (~20 ms) so that one read from Redis is slow to guess.
TOKEN_ROUNDS = 100_000


def served_with(
    settings: Settings, fixtures: Fixtures, chaos: ChaosProfile | None, sandbox: str
) -> dict[str, str]:
    """What every worker of a shared sandbox must agree on (stores/redis_serving.py), as
    text: the speed as a number (60 and 60.0 are one speed), the fixtures and the chaos
    profile as a digest of what was loaded (two copies of one file are the same, one file
    edited is not), and where they came from, for the message only; the admin token as a
    digest keyed with the sandbox's name, never in clear."""
    source = settings.fixtures
    if source is None:
        origin = "default (shipped with layers-mock)"
    else:
        origin = "a document" if isinstance(source, Mapping) else str(source)
    return {
        "seed": str(settings.seed),
        "clock": settings.clock,
        "speed": repr(float(settings.speed)),
        "progression": settings.progression,
        "fixtures": hashlib.sha256(orjson.dumps(fixtures)).hexdigest(),
        "chaos": "none" if chaos is None else chaos.digest(),
        "strict": "on" if settings.strict else "off",
        "journal-bodies": "on" if settings.journal_bodies else "off",
        "admin-token": token_digest(settings.admin_token, sandbox),
        "fixtures-from": origin,
        "chaos-from": "" if settings.chaos is None else str(settings.chaos),
        "admin-token-from": "generated" if settings.admin_token_generated else "given",
    }


def token_digest(token: str | None, sandbox: str) -> str:
    """`none`, or a digest of the token keyed with the sandbox's name: two serves with one
    token agree, and Redis never holds the token (nor a digest another sandbox shares)."""
    if token is None:
        return "none"
    salt = f"layers-mock admin token of sandbox {sandbox}".encode()
    return hashlib.pbkdf2_hmac("sha256", token.encode(), salt, TOKEN_ROUNDS).hex()


def make_deps(settings: Settings) -> Deps:
    admin_token = check_admin_token(settings.admin_token)
    clock = Clock(settings.clock, speed=settings.speed)
    fixtures = fixtures_of(settings)
    # Before the store: a bad file refuses the start before anything of the state is written.
    chaos = ChaosProfile.load(settings.chaos) if settings.chaos else None
    store = make_store(settings.state)
    if getattr(store, "shared", False):  # compared with the live workers' as it opens
        name = store.name  # type: ignore[attr-defined]
        store.serving = served_with(settings, fixtures, chaos, name)  # type: ignore[attr-defined]
    sim = Simulator(fixtures, clock, settings.seed, store)
    from .statecheck import state_check

    try:
        sim.start(state_check())
    except (StoreInUse, ValueError) as exc:  # the file's lock, the file, or its clock
        store.close()
        said = f"--state {shown(settings.state)}: {exc}"
        if isinstance(exc, StoreUnreachable):  # (a worker started in an outage waits: cli.py)
            raise StoreUnreachable(said) from None
        raise ValueError(said) from None
    except (ApiError, orjson.JSONDecodeError) as exc:
        store.close()
        found = (
            "; ".join((exc.details or {}).get("formErrors", [])[:3])
            if isinstance(exc, ApiError)
            else str(exc)
        )
        raise ValueError(
            f"--state {shown(settings.state)}: not a state file this version of layers-mock can "
            f"read: {found}"
        ) from None
    try:
        return Deps(
            sim=sim,
            strict=settings.strict,
            progression=settings.progression,
            admin_token=admin_token,
            chaos=chaos,
            journal=_journal(store, settings.journal_bodies),
        )
    except BaseException:  # the store goes (on Redis, this worker's liveness mark)
        store.close()
        raise


def _journal(store: Any, bodies: bool) -> Journal:
    """On a shared store, one journal for every worker (stores/redis_journal.py)."""
    if getattr(store, "shared", False):
        from .stores.redis_journal import SharedJournal

        return SharedJournal(store, bodies=bodies)
    keep_mark = getattr(store, "keep_mark", None)  # a state file's: marks survive a restart
    if keep_mark is not None:
        return Journal(
            bodies=bodies,
            resets=store.marks,
            keep_mark=keep_mark,
            org_marks=store.org_marks,
            keep_org_mark=store.keep_org_mark,
        )
    return Journal(bodies=bodies)


def make_app(settings: Settings) -> Any:
    from .http.app import build_app

    return build_app(make_deps(settings))
