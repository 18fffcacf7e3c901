"""Reading a state back (an import, or a durable store at start-up), checked completely first.

Every row is checked against control.yaml's schema for its table (the caller passes that check
in: core/ does not read the contract) and every reference between records is checked here: a
key's organization exists, an influencer's project and job exist and agree with it, list
positions have no gap, an idempotency record belongs to a known key, and so on. Only a document
that passes all of it becomes a State; until then nothing of the running server changes. A
broken document is a 422 that names the first problems, never a server that answers 500 later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import orjson

from .clock import Clock, check_instant, format_ms
from .errors import ApiError, validation
from .idempotency import IdempotencyRecords, StoredResponse
from .ids import IdMint, check_seed
from .orgclocks import OrgClocks
from .projects import METADATA_MAX_BYTES
from .ratelimit import RateLimiter
from .rules import MAX_RULES, MAX_TENANT_RULES, Rules, no_organization, rule_organization
from .snapshot import FORMAT, KEY_FIELD, TABLES
from .state import State

# (part, value) -> problems; part is "meta", a table name, "idempotency-answer" or "rule". The
# edge implements it with control.yaml's schemas (and the partner contract for stored answers
# and a rule's operation).
Check = Callable[[str, Any], list[str]]
MAX_PROBLEMS = 20
# The most an imported counter may hold. A counter only goes up, and an export holds it up to
# 2^53 - 1 (control.yaml StateCounter): imported at that ceiling, the next request (or a SQLite
# or Redis block of 1,024 request ids) passed it, and every export from then on broke its own
# schema, for good, since a reset rewinds no request id. Half the ceiling leaves 2^52 to count.
COUNTER_ROOM = 2**52
# Headers a stored answer may not carry: the server writes these itself on every response.
OWN_HEADERS = frozenset(
    {"content-length", "content-type", "transfer-encoding", "connection", "x-request-id"}
)


@dataclass(slots=True)
class Restored:
    state: State
    requests: dict[str, int]  # request-id counters (requestids.py)
    now_ms: int


def _converter(cls: type) -> Callable[[dict[str, Any]], Any]:
    """Row -> record. The schema has checked the row's fields (exactly the record's) and which
    are integers; JSON may still spell one `2.0`, which must become 2 before it meets
    arithmetic or a timestamp. Runs once per row of a million-row import: kept lean."""
    ints = [f.name for f in fields(cls) if f.type in ("int", "int | None")]
    int_lists = [f.name for f in fields(cls) if f.type in ("list[int]", "tuple[int, ...]")]
    tuples = [f.name for f in fields(cls) if str(f.type).startswith("tuple")]

    def convert(data: dict[str, Any]) -> Any:
        for name in ints:
            if data[name].__class__ is float:
                data[name] = int(data[name])
        for name in int_lists:
            data[name] = [int(v) for v in data[name]]
        for name in tuples:
            data[name] = tuple(data[name])
        return cls(**data)

    return convert


CONVERT = {name: _converter(cls) for name, cls in TABLES.items()}
# The instants each table's records are stamped with by their organization's clock: the first
# (when the record began) and the later ones, none before it (a project's `updated_ms` aside:
# a fixture's equals its creation, which is all it is held to).
STAMPED = {
    "projects": ("created_ms", "updated_ms"),
    "influencers": ("created_ms", "patched_ms", "deleted_ms"),
    "jobs": ("started_ms", "cancel_ms", "poll_steps_ms"),
}
# The same held to `now` in one expression per table: what a million-row import runs per row
# (`StateBuilder._stamps` says what is wrong only when this is False).
FINE: dict[str, Callable[[Any, int], bool]] = {
    "projects": lambda p, now: p.created_ms <= now and p.updated_ms <= now,
    "influencers": lambda i, now: (
        i.created_ms <= now
        and (i.patched_ms is None or i.created_ms <= i.patched_ms <= now)
        and (i.deleted_ms is None or i.created_ms <= i.deleted_ms <= now)
    ),
    "jobs": lambda j, now: (
        j.started_ms <= now
        and (j.cancel_ms is None or j.started_ms <= j.cancel_ms <= now)
        and all(j.started_ms <= step <= now for step in j.poll_steps_ms)
    ),
}


# What a refusal of the document's clock options says to do: serve's options stay, and a
# document without the field loads at its instants on this server's clock (a staging export
# reproduced on a virtual test mock).
_LEAVE_OUT = "Leave clock.%s out of the document to load it on this server's clock."


class StateBuilder:
    """Feed it the meta part, then rows in any order; `finish` checks references and builds."""

    def __init__(self, check: Check, clock: Clock | None = None) -> None:
        """`clock`: the running server's, for an import, which cannot change its mode, speed or
        start (serve's options): a document that names others is refused, not half-taken."""
        self.check = check
        self.clock = clock
        self.problems: list[str] = []
        self.header: dict[str, Any] | None = None
        self.tables: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
        self.answers: list[tuple[bytes, StoredResponse, str]] = []  # ..., where in the document
        self.answer_keys: set[bytes] = set()
        self.counts = dict.fromkeys((*TABLES, "idempotency"), 0)
        # Whether records are held to their organization's clock: an import whose clocks are
        # sound (else those are the problem, told in `finish`, and no stamp can be judged).
        self.stamping = False
        self.server_now = 0  # the document's clock.nowMs, and its organizations' own
        self.nows: dict[str, int] = {}

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        if len(self.problems) >= MAX_PROBLEMS:
            raise self._error()  # enough to act on; reading on would only cost time

    def _error(self) -> ApiError:
        return validation("Invalid body.", [f"State document: {p}" for p in self.problems])

    def meta(self, document: Any) -> None:
        found = document.get("format") if isinstance(document, dict) else None
        if isinstance(found, str) and found != FORMAT:  # another version's: told first, alone
            self._problem(f"format: must be {FORMAT} (it is {found[:60]}).")
            raise self._error()  # (its header and tables need not be this format's)
        problems = self.check("meta", document)
        if not problems and document.get("format") != FORMAT:
            problems = [f"format: must be {FORMAT}."]
        for text in problems:
            self._problem(text.removeprefix("."))
        if not problems:
            self._room(document)
            self.header = document
            clock = document["clock"]
            self.stamping = self.clock is not None and _sound(clock, self.clock)
            self.server_now = int(clock["nowMs"])
            self.nows = {org: int(ms) for org, ms in clock.get("organizations", {}).items()}

    def _room(self, document: dict[str, Any]) -> None:
        """Counters that count on from here: each leaves room below the export's ceiling."""
        counters = [
            *(f"mint.{kind}" for kind in document["mint"]),
            *(f"requests.{kind}" for kind in document["requests"]),
            "rules.next",
        ]
        for where in counters:
            part, name = where.split(".", 1)
            if document[part][name] > COUNTER_ROOM:
                self._problem(
                    f"{where}: at most {COUNTER_ROOM} (2^52), so that it can count on; it is "
                    f"{document[part][name]}."
                )

    def row(self, table: str, data: Any) -> None:
        if table not in self.counts:
            self._problem(f"{table}: not a table of a state export.")
            return
        where = f"{table}[{self.counts[table]}]"
        self.counts[table] += 1
        problems = self.check(table, data)
        for text in problems:
            self._problem(_at(where, text))
        if problems:
            return
        ident = data[KEY_FIELD[table]]
        if table == "idempotency":
            self._answer(where, data)
            return
        found = self.tables[table]
        if ident in found:
            self._problem(f"{where}: duplicate id {ident}.")
            return
        found[ident] = record = CONVERT[table](data)
        fine = FINE.get(table) if self.stamping else None
        if fine is not None and not fine(record, self.nows.get(record.org_id, self.server_now)):
            self._stamps(where, table, record)

    def _now_of(self, org_id: str) -> tuple[int, str]:
        """The "now" of an organization in the document, and the path that names it: its own
        clock when it has one, else the server's."""
        assert self.header is not None
        clock = self.header["clock"]
        own = clock.get("organizations", {}).get(org_id)
        if own is not None:
            return int(own), f"clock.organizations.{org_id}"
        return int(clock["nowMs"]), "clock.nowMs"

    def _stamps(self, where: str, table: str, record: Any) -> None:
        """A record is stamped by the clock of the organization it belongs to, which never
        runs backwards: no stamp after that clock's now, none before the record's first (held
        to that by FINE on every row; this says which stamp is not). Only on an import: a
        durable store at start-up is read as it was written."""
        first_name, *names = STAMPED[table]
        first = getattr(record, first_name)
        now, clock = self._now_of(record.org_id)
        stamps = [(first_name, first)]
        for name in names:
            value = getattr(record, name)
            if isinstance(value, list):  # a poll progression's steps
                stamps += [(f"{name}[{n}]", v) for n, v in enumerate(value)]
            elif value is not None:
                stamps.append((name, value))
        for name, value in stamps:
            if value > now:
                self._problem(
                    f"{where}.{name}: {format_ms(value)} is after its organization's now, "
                    f"{format_ms(now)} ({clock})."
                )
            elif value < first and name != "updated_ms":
                self._problem(
                    f"{where}.{name}: {format_ms(value)} is before its {first_name}, "
                    f"{format_ms(first)}."
                )

    def _answer(self, where: str, data: dict[str, Any]) -> None:
        key = bytes.fromhex(data["key"])
        if key in self.answer_keys:
            self._problem(f"{where}: duplicate key {data['key']}.")
            return
        for name, value in data["headers"]:
            if name != name.lower() or name in OWN_HEADERS or name.startswith("x-ratelimit-"):
                self._problem(f"{where}.headers: {name!r} is not a header a stored answer keeps.")
            if not (value.isascii() and value.isprintable()):
                self._problem(f"{where}.headers: the value of {name!r} is not printable ASCII.")
                return
        body = None if data["body"] is None else data["body"].encode()
        if body is not None:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError:
                self._problem(f"{where}.body: not a JSON document.")
                return
        for text in self.check("idempotency-answer", data):
            self._problem(_at(where, text))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in data["headers"]]
        self.answer_keys.add(key)
        self.answers.append(
            (
                key,
                StoredResponse.of(
                    data["api_key_id"],
                    data["operation_id"],
                    bytes.fromhex(data["fingerprint"]),
                    int(data["status"]),
                    headers,
                    body,
                    int(data["stored_ms"]),
                ),
                where,
            )
        )

    def finish(self) -> Restored:
        """The State, or a 422 naming the first problems (nothing else happens)."""
        if self.header is None and not self.problems:
            self._problem("meta: missing.")
        if not self.problems:
            self._references()
            self._rules()
            self._clocks()
        if self.problems:
            raise self._error()
        assert self.header is not None
        return self._build(self.header)

    def _references(self) -> None:
        t = self.tables
        orgs, keys, projects = t["organizations"], t["keys"], t["projects"]
        influencers, jobs = t["influencers"], t["jobs"]
        for org in orgs.values():
            parent = orgs.get(org.parent_id) if org.parent_id is not None else None
            if org.parent_id is not None and (
                parent is None or parent is org or parent.parent_id is not None
            ):
                self._problem(
                    f"organizations: {org.organization_id} names a parent that is not a "
                    "top-level organization."
                )
        key_ids: set[str] = set()
        for key in keys.values():
            if key.org_id not in orgs:
                self._problem(
                    f"keys: {key.api_key_id} belongs to unknown organization {key.org_id}."
                )
            if key.api_key_id in key_ids:
                self._problem(f"keys: apiKeyId {key.api_key_id} is used twice.")
            key_ids.add(key.api_key_id)
        seqs: set[int] = set()
        for project in projects.values():
            if project.org_id not in orgs:
                self._problem(f"projects: {project.project_id} belongs to unknown organization.")
            if project.seq in seqs:
                self._problem(f"projects: seq {project.seq} is used twice (the list's keyset).")
            seqs.add(project.seq)
            if len(orjson.dumps(project.metadata)) > METADATA_MAX_BYTES:
                self._problem(f"projects: the metadata of {project.project_id} is over 8 KB.")
        assert self.header is not None
        next_seq = self.header["mint"].get("projectSeq")
        if next_seq is not None and seqs and int(next_seq) < max(seqs):
            self._problem("mint: projectSeq is below a project's seq (the next would repeat it).")
        positions: dict[str, list[int]] = {}
        for inf in influencers.values():
            project = projects.get(inf.project_id)
            job = jobs.get(inf.job_id)
            if project is None or project.org_id != inf.org_id:
                self._problem(f"influencers: {inf.influencer_id} names an unknown project.")
            elif job is None or job.influencer_id != inf.influencer_id:
                self._problem(f"influencers: {inf.influencer_id} names a job that is not its own.")
            else:
                positions.setdefault(inf.project_id, []).append(inf.position)
        for job in jobs.values():
            inf = influencers.get(job.influencer_id)
            if inf is None or inf.job_id != job.job_id or inf.project_id != job.project_id:
                self._problem(f"jobs: {job.job_id} names an influencer that is not its own.")
            elif job.org_id != inf.org_id:
                self._problem(f"jobs: {job.job_id} belongs to another organization.")
            elif any(b < a for a, b in zip(job.schedule_ms, job.schedule_ms[1:], strict=False)):
                self._problem(f"jobs: {job.job_id} has a schedule that goes backwards.")
        for project_id, seen in positions.items():
            if sorted(seen) != list(range(len(seen))):
                self._problem(f"influencers: positions in project {project_id} are not 0..n-1.")
        self._answers(key_ids, orgs)
        self._rates(key_ids)

    def _answers(self, key_ids: set[str], orgs: dict[str, Any]) -> None:
        key_orgs = {key.api_key_id: key.org_id for key in self.tables["keys"].values()}
        for _, answer, where in self.answers:
            key_id, _, acting_in = answer.api_key_id.partition("@")  # pipeline.principal
            if key_id not in key_ids or (acting_in and acting_in not in orgs):
                self._problem(f"idempotency: a record belongs to unknown key {answer.api_key_id}.")
            elif self.stamping:  # stored by the clock of the organization acted in
                now, clock = self._now_of(acting_in or key_orgs[key_id])
                if answer.stored_ms > now:
                    self._problem(
                        f"{where}.stored_ms: {format_ms(answer.stored_ms)} is after its "
                        f"organization's now, {format_ms(now)} ({clock})."
                    )

    def _rates(self, key_ids: set[str]) -> None:
        assert self.header is not None
        windows: set[tuple[str, str]] = set()
        for n, (api_key_id, kind, _, _) in enumerate(self.header["rates"]):
            if api_key_id not in key_ids:
                self._problem(f"rates: a window belongs to unknown key {api_key_id}.")
            if (api_key_id, kind) in windows:  # a key has one window per class: one would go
                self._problem(f"rates[{n}]: a second {kind} window of key {api_key_id}.")
            windows.add((api_key_id, kind))

    def _rules(self) -> None:
        assert self.header is not None
        rule_ids = [r["ruleId"] for r in self.header["rules"]["rules"]]
        if len(set(rule_ids)) != len(rule_ids):
            self._problem("rules: a ruleId is used twice.")
        # each maker's rules (None: the operator's), bounded as the route bounds them
        made: Counter[str | None] = Counter()
        for n, rule in enumerate(self.header["rules"]["rules"]):
            self._rule(f"rules.rules[{n}]", rule)
            tenant = rule.get("tenant")
            if tenant is None:
                if made[None] == MAX_RULES:
                    self._problem(
                        f"rules.rules[{n}]: the operator made {MAX_RULES} rules already, as many "
                        "as it may add."
                    )
                made[None] += 1
            elif isinstance(tenant, str):
                if made[tenant] == MAX_TENANT_RULES:
                    self._problem(
                        f"rules.rules[{n}].tenant: {tenant} made {MAX_TENANT_RULES} rules "
                        "already, as many as an organization may add."
                    )
                made[tenant] += 1

    def _rule(self, where: str, rule: dict[str, Any]) -> None:
        """What POST /_mock/rules would refuse (the same checks), and what only it makes."""
        for text in self.check("rule", rule):
            self._problem(f"{where}.{text}")
        orgs = self.tables["organizations"]
        named = rule["match"].get("organizationId")
        if named is not None:
            org_id = rule_organization(named, orgs)
            if org_id is None:
                self._problem(f"{where}.{no_organization(named)}")
            else:
                rule["match"]["organizationId"] = org_id  # as requests carry it
        if (tenant := rule.get("tenant")) is not None:  # a tenant's, as the route makes it
            own = rule_organization(tenant, orgs)
            if own is None:
                self._problem(f"{where}.tenant: the server has no organization {tenant!r}.")
            elif rule["match"].setdefault("organizationId", own) != own:
                self._problem(
                    f"{where}.match.organizationId: a tenant's rule names its own organization, "
                    f"{own} (its tenant)."
                )
            else:
                rule["tenant"] = own
        count, remaining = rule.get("count"), rule["remaining"]
        if (count is None) != (remaining is None) or (
            remaining is not None and not 1 <= remaining <= count
        ):
            self._problem(
                f"{where}.remaining: must be null without a count, else from 1 to the count "
                "(a rule is deleted when none is left)."
            )

    def _clocks(self) -> None:
        assert self.header is not None
        clock = self.header["clock"]
        start = self.clock.start_ms if self.clock is not None else clock.get("startMs")
        if self.clock is not None:
            self._server_clock(self.clock, clock)
        for org_id, instant in clock.get("organizations", {}).items():
            if org_id not in self.tables["organizations"]:
                self._problem(f"clock: a clock belongs to unknown organization {org_id}.")
            self._not_before(f"clock.organizations.{org_id}", instant, start)
        self._not_before("clock.nowMs", clock["nowMs"], start)

    def _server_clock(self, server: Clock, clock: dict[str, Any]) -> None:
        mode, speed, start = clock.get("mode"), clock.get("speed"), clock.get("startMs")
        if mode is not None and mode != server.mode:
            self._problem(
                f"clock.mode: this server's clock is {server.mode} (serve --clock); an import "
                f"cannot change it (the document's is {mode}). {_LEAVE_OUT % 'mode'}"
            )
        elif speed is not None and server.mode == "wall" and speed != server.speed:
            self._problem(
                f"clock.speed: this server's wall clock runs at {server.speed:g} (serve --speed); "
                f"an import cannot change it (the document's is {speed:g}). {_LEAVE_OUT % 'speed'}"
            )
        if start is not None and start != server.start_ms:
            self._problem(
                f"clock.startMs: this server's clock starts at {format_ms(server.start_ms)} (the "
                f"document's at {format_ms(int(start))}); an import cannot change it. "
                f"{_LEAVE_OUT % 'startMs'}"
            )

    def _not_before(self, where: str, instant: float, start: float | None) -> None:
        """No route moves a clock behind its start (a reset returns to it): an instant there
        would make a reset move time forward and jobs created `before` the server began."""
        if start is not None and instant < start:
            self._problem(
                f"{where}: {format_ms(int(instant))} is before the clock's start, "
                f"{format_ms(int(start))}."
            )

    def _build(self, header: dict[str, Any]) -> Restored:
        t = self.tables
        for inf in sorted(t["influencers"].values(), key=lambda i: i.position):
            t["projects"][inf.project_id].influencer_ids.append(inf.influencer_id)
        seed = check_seed(header["seed"])
        records = IdempotencyRecords()
        state = State(
            seed=seed,
            organizations=t["organizations"],
            keys=t["keys"],
            projects=t["projects"],
            influencers=t["influencers"],
            jobs=t["jobs"],
            mint=IdMint(seed, {k: int(v) for k, v in header["mint"].items()}),
            idempotency=records,
            rates=RateLimiter(),
            rules=Rules(),
            clocks=OrgClocks.restore(header["clock"].get("organizations", {})),
        )
        for key, answer, _ in self.answers:
            records.store(key, answer)
        state.rates.restore([(k, c, int(w), int(n)) for k, c, w, n in header["rates"]])
        state.rules.restore(header["rules"])
        state.clean()
        now_ms = check_instant(int(header["clock"]["nowMs"]))
        requests = {k: int(v) for k, v in header["requests"].items()}
        return Restored(state, requests, now_ms)


def _sound(clock: dict[str, Any], server: Clock) -> bool:
    """Whether every instant of the document's clock is one the server's clock can stand at."""
    instants = [clock["nowMs"], *clock.get("organizations", {}).values()]
    return all(server.start_ms <= instant for instant in instants)


def _at(where: str, text: str) -> str:
    return f"{where}{text}" if text[:1] in ".[" else f"{where}: {text}"


def broken(message: str) -> ApiError:
    return validation("Invalid body.", [f"State document: {message}"])
