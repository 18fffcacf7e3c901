"""`Rules.apply` checks only the rules that could match a request; it must steer exactly as the
plain loop over every rule did: the same effects (the first matching rule, in the order rules
were added, sets each), the same counts used up and rules spent, through adds, deletes, clears
by maker, bounds, snapshots and restores interleaved."""

from __future__ import annotations

import copy
import json
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers_mock_server.core import rules as rules_module
from layers_mock_server.core.errors import ApiError
from layers_mock_server.core.prefer import NONE, Preferences
from layers_mock_server.core.rules import EFFECTS, RequestFacts, Rule, Rules, chance

ORGS = ["org_a", "org_b", "org_c"]
OPERATIONS = ["getJob", "createInfluencer", "listJobs"]
SEED = 11
BOUND = 4  # each maker's, small so that adds are refused now and then


def plain_apply(rules: dict[str, Rule], request: RequestFacts, prefs: Preferences) -> Preferences:
    """The loop `Rules.apply` was before the index: every rule, in the order added."""
    found: dict[str, Any] = {}
    for rule in list(rules.values()):
        if not rule.matches(request):
            continue
        probability = rule.spec.get("probability")
        if probability is not None:  # drawn per match of the rule (its `drawn`)
            drawn = rule.drawn
            rule.drawn = drawn + 1
            if chance(SEED, f"{rule.rule_id}:{drawn}") >= probability:
                continue
        for name in EFFECTS:
            if name in rule.spec:
                found.setdefault(name, rule.spec[name])
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                del rules[rule.rule_id]
    if not found:
        return prefs
    return Preferences(
        outcome=prefs.outcome or found.get("outcome"),
        stage=prefs.stage or found.get("stage"),
        progression=prefs.progression or found.get("progression"),
        fault=prefs.fault or found.get("fault"),
        latency_ms=prefs.latency_ms or found.get("latencyMs"),
    )


MAKERS = st.sampled_from([None, None, *ORGS])
EFFECT_VALUES = {
    "fault": st.sampled_from(["429", "500", "503", "drop"]),
    "latencyMs": st.sampled_from([0, 10, 250]),
    "outcome": st.sampled_from(["completed", "failed", "canceled"]),
    "stage": st.sampled_from(["queued", "rendering"]),
    "progression": st.sampled_from(["time", "poll"]),
}


@st.composite
def specs(draw: st.DrawFn, maker: str | None) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if draw(st.booleans()):
        match["operationId"] = draw(st.sampled_from(OPERATIONS))
    if draw(st.integers(0, 3)) == 0:
        match["method"] = draw(st.sampled_from(["GET", "post"]))
    if draw(st.integers(0, 3)) == 0:
        match["path"] = draw(st.sampled_from(["/v1/jobs/*", "/v1/projects/*/influencers"]))
    if draw(st.integers(0, 3)) == 0:
        match["projectId"] = draw(st.sampled_from(["prj_1", "prj_2"]))
    if maker is not None:  # the route names the maker; an import may carry another (never fires)
        match["organizationId"] = maker if draw(st.integers(0, 5)) else draw(st.sampled_from(ORGS))
    elif draw(st.booleans()):
        match["organizationId"] = draw(st.sampled_from(ORGS))
    spec: dict[str, Any] = {"match": match}
    for name in draw(st.lists(st.sampled_from(list(EFFECT_VALUES)), min_size=1, unique=True)):
        spec[name] = draw(EFFECT_VALUES[name])
    if draw(st.booleans()):
        spec["count"] = draw(st.sampled_from([1, 2, 3, 2.0]))
    if draw(st.integers(0, 2)) == 0:
        spec["probability"] = draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]))
    return spec


@st.composite
def requests(draw: st.DrawFn, sequence: int) -> RequestFacts:
    acting = draw(st.sampled_from([*ORGS, None]))
    # a parent key acting in its child: the sender differs from the organization acted in
    sender = acting if draw(st.integers(0, 3)) else draw(st.sampled_from([*ORGS, None]))
    operation = draw(st.sampled_from(OPERATIONS))
    method, path = {
        "getJob": ("GET", "/v1/jobs/job_1"),
        "createInfluencer": ("POST", "/v1/projects/prj_1/influencers"),
        "listJobs": ("GET", "/v1/jobs"),
    }[operation]
    project = draw(st.sampled_from(["prj_1", "prj_2", None]))
    return RequestFacts(method, path, operation, acting, project, sequence, sender)


PREFS = st.sampled_from([NONE, Preferences(fault="429"), Preferences(latency_ms=5, stage="done")])


def shown(rules: dict[str, Rule]) -> list[dict[str, Any]]:
    return [r.public() for r in rules.values()]


@settings(max_examples=300)
@given(st.data())
def test_indexed_apply_steers_as_the_plain_loop_over_every_rule(data: st.DataObject) -> None:
    indexed = Rules()
    plain: dict[str, Rule] = {}
    with (
        patch.object(rules_module, "MAX_RULES", BOUND),
        patch.object(rules_module, "MAX_TENANT_RULES", BOUND),
    ):
        for sequence in range(data.draw(st.integers(1, 60), label="steps")):
            step = data.draw(
                st.sampled_from(["add"] * 4 + ["apply"] * 5 + ["delete", "clear", "restore"])
            )
            if step == "add":
                maker = data.draw(MAKERS)
                spec = data.draw(specs(maker))
                mine = sum(1 for r in plain.values() if r.tenant == maker)
                if mine == BOUND:  # each maker's own rules only count
                    with pytest.raises(ApiError) as refused:
                        indexed.add(copy.deepcopy(spec), maker)
                    assert refused.value.status == 409
                else:
                    rule = indexed.add(copy.deepcopy(spec), maker)
                    plain[rule.rule_id] = Rule.from_input(rule.rule_id, spec, maker)
            elif step == "apply":
                request = data.draw(requests(sequence))
                prefs = data.draw(PREFS)
                assert indexed.apply(SEED, request, prefs) == plain_apply(plain, request, prefs)
            elif step == "delete":
                rule_id = data.draw(st.sampled_from([*plain, "rule_999"]))
                assert indexed.delete(rule_id) == (plain.pop(rule_id, None) is not None)
            elif step == "clear":
                maker = data.draw(MAKERS)
                gone = [i for i, r in plain.items() if maker is None or r.tenant == maker]
                assert indexed.clear(maker) == len(gone)
                for rule_id in gone:
                    del plain[rule_id]
            else:  # an export imported again, or a store's rows read back: maybe reordered
                snapshot = json.loads(json.dumps(indexed.snapshot()))
                order = data.draw(st.permutations(range(len(snapshot["rules"]))))
                snapshot["rules"] = [snapshot["rules"][n] for n in order]
                plain = {r.rule_id: r for r in (list(plain.values())[n] for n in order)}
                indexed = Rules()
                indexed.restore(snapshot)
            assert shown(indexed.rules) == shown(plain)
            for maker in [None, *ORGS]:
                assert [r.public() for r in indexed.of(maker)] == [
                    r.public() for r in plain.values() if maker is None or r.tenant == maker
                ]
