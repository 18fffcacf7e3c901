"""Credits (spec: getCredits, whoami's creditBalance, 402 BILLING_EXHAUSTED; the Layers credits
page): a job reserves its price when it starts and the reservation is spent when it completes
or released when it fails; a start the wallet cannot cover is refused and starts nothing.

The jobs here spend real credits, so they are started only with a key given for that purpose
(`--wallet-key`, of another organization than `--api-key`, and `--wallet-project-id`), never
with the partner's main key. The price of a job is learned from the wallet, not assumed.
"""

from __future__ import annotations

from typing import Any

from .. import contract as c
from ..clause import Needs, Section
from ..exchange import Exchange
from ..observe import Transcript
from ..report import NotChecked, Violation
from ..session import Job, Session, body_of, expect_error, items_of

SECTION = Section("credits", "Credits")
JSON = dict[str, Any]
WALLET = ("wallet_key", "wallet_project_id")
MAX_JOBS = 5  # a wallet that takes more jobs than this to run dry is not run dry


def _int(clause: str, wallet: JSON, name: str, ex: Exchange | None = None) -> int:
    value = wallet.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Violation(clause, f"the wallet's {name} is {value!r}, not an integer", ex)
    return value


def _wallet_key(s: Session) -> tuple[str, str]:
    key = s.require("wallet_key", "a key whose wallet the run may spend")
    return key, s.require("wallet_project_id", "a project of --wallet-key's organization")


def _price(s: Session, key: str, before: JSON, after: JSON) -> int:
    """What the job just started took from `available` (NOT CHECKED for a sandbox key)."""
    taken = _int(s.clause, before, "available") - _int(s.clause, after, "available")
    if taken <= 0 and key.startswith(c.SANDBOX_PREFIX):
        raise NotChecked("--wallet-key is a sandbox (lp_test_) key: its jobs spend no credits")
    if taken <= 0:
        raise Violation(s.clause, f"starting a job took {taken} credits from available", None)
    return taken


@SECTION.clause("credits.reserve-then-settle", needs=Needs(jobs=1, identities=WALLET))
def reserve_then_settle(s: Session) -> None:
    """A job reserves its price when it starts (reservedCredits up, available down, balance
    unchanged); completed, the reservation is spent (balance and usedThisPeriod move by it);
    failed or canceled, it is released."""
    clause = "credits.reserve-then-settle"
    key, project = _wallet_key(s)
    before = s.wallet(key)
    job = s.start_job(key=key, project=project)
    during = s.wallet(key)
    evidence = s.target.exchanges[-1]
    price = _price(s, key, before, during)
    if body_of(s.read_job(job)).get("status") == "running":
        reserved = _int(clause, during, "reservedCredits") - _int(clause, before, "reservedCredits")
        if reserved != price or during.get("balance") != before.get("balance"):
            raise Violation(
                clause, f"a running job took {price} but reserved {reserved} credits", evidence
            )
    ended = s.wait_terminal(job).get("status")
    after = s.wallet(key)
    evidence = s.target.exchanges[-1]
    spent = price if ended == "completed" else 0
    want = {
        "balance": _int(clause, before, "balance") - spent,
        "reservedCredits": _int(clause, before, "reservedCredits"),
        "available": _int(clause, before, "available") - spent,
    }
    if (after.get("currentPeriod") or {}).get("start") == (before.get("currentPeriod") or {}).get(
        "start"
    ):
        want["usedThisPeriod"] = _int(clause, before, "usedThisPeriod") + spent
    wrong = {k: after.get(k) for k, v in want.items() if after.get(k) != v}
    if wrong:
        raise Violation(clause, f"after the job {ended}: {wrong}, expected {want}", evidence)


def _start(s: Session, key: str, project: str) -> Exchange:
    headers = {"Idempotency-Key": s.target.idempotency_key(), "Prefer": "outcome=completed"}
    return s.create({"prompt": "conformance wallet"}, key=key, project=project, headers=headers)


def _newest(s: Session, key: str, project: str) -> object:
    """The newest influencer of the wallet's project (None when it has none)."""
    items = items_of(s.get(c.create_path(project) + "?limit=1", key))
    return items[0].get("influencerId") if items else None


@SECTION.clause("credits.exhausted-402", needs=Needs(jobs=1, spare=MAX_JOBS - 1, identities=WALLET))
def exhausted_402(s: Session) -> None:
    """Once available cannot cover a job, a create (and a clone) is refused with
    BILLING_EXHAUSTED (402 on the mock: the status is its decision) and starts nothing (no
    influencer, nothing reserved); a job it can cover is never refused."""
    clause = "credits.exhausted-402"
    key, project = _wallet_key(s)
    wallet = s.wallet(key)
    price: int | None = None
    started: list[Job] = []
    for _ in range(MAX_JOBS + 1):
        available = _int(clause, wallet, "available")
        covered = price is None or available >= price
        if covered:
            left = s.allowance.get(clause)
            needed = 0 if price is None else available // price
            if left is not None and needed > left:
                raise NotChecked(
                    f"the wallet holds {available} available credits at {price} a job: running "
                    f"it dry takes {needed} more job(s), the --max-creates budget leaves {left}"
                )
            s.spend_job()
        newest = _newest(s, key, project)
        ex = _start(s, key, project)
        if ex.status != 202:
            break
        if not covered:
            raise Violation(clause, f"a job was started with {available} credits available", ex)
        data = body_of(ex)
        job = Job(ex, str(data.get("jobId")), str(data.get("influencerId")), "completed", data, key)
        started.append(job)
        s.read_job(job)
        s.read_influencer(job)
        after = s.wallet(key)
        price = price or _price(s, key, wallet, after)
        wallet = after
    else:
        raise NotChecked(f"the wallet did not run dry within {MAX_JOBS} jobs")
    refusal = 402 if s.mock else None  # only the code is documented, the status decided
    expect_error(clause, ex, refusal, c.BILLING_EXHAUSTED)
    if covered and price is not None:
        raise Violation(clause, f"refused with {available} available at {price} a job", ex)
    if started:
        source = c.clone_path(started[0].influencer_id)
        clone = s.call("POST", source, {"name": "Conformance wallet clone"}, key=key)
        expect_error(clause, clone, refusal, c.BILLING_EXHAUSTED)
    after = s.wallet(key)
    if after.get("reservedCredits") != wallet.get("reservedCredits"):
        raise Violation(clause, "a refused start changed reservedCredits", s.target.exchanges[-1])
    if _newest(s, key, project) != newest:
        raise Violation(clause, "a refused start left an influencer behind", s.target.exchanges[-1])


def _is(ex: Exchange, path: str) -> bool:
    return ex.method == "GET" and ex.bare_path == path and ex.status == 200


def _principal(ex: Exchange) -> tuple[str | None, str | None]:
    return ex.request_header("Authorization"), ex.request_header(c.ORG_HEADER)


@SECTION.observer(
    "credits.whoami-matches-wallet",
    producers=("credits.reserve-then-settle", "tenancy.suborg-acts-in-child"),
)
def whoami_matches_wallet(t: Transcript) -> None:
    """whoami's creditBalance is the balance of GET /v1/credits for the same key and
    organization, and a wallet's available is balance - reservedCredits (at least 0)."""
    clause = "credits.whoami-matches-wallet"
    reads = t.partner
    for ex in reads:
        if _is(ex, c.CREDITS):
            wallet = body_of(ex)
            balance = _int(clause, wallet, "balance", ex)
            reserved = _int(clause, wallet, "reservedCredits", ex)
            if wallet.get("available") != max(0, balance - reserved):
                raise Violation(
                    clause, f"available is not balance {balance} - reserved {reserved}", ex
                )
    judged = False
    for a, me, b in zip(reads, reads[1:], reads[2:], strict=False):
        if not (_is(a, c.CREDITS) and _is(me, c.WHOAMI) and _is(b, c.CREDITS)):
            continue
        if not _principal(a) == _principal(me) == _principal(b):
            continue
        wallet = body_of(a)
        if wallet.get("balance") != body_of(b).get("balance"):
            continue  # the wallet moved between the reads: nothing to compare with
        judged = True
        want = {
            "creditBalance": wallet.get("balance"),
            "organizationId": wallet.get("organizationId"),
        }
        got = {k: body_of(me).get(k) for k in want}
        if got != want:
            raise Violation(clause, f"whoami says {got}, the wallet {want}", me)
    t.need(judged, "no whoami read between two equal reads of its wallet")
