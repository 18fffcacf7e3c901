"""Start-up refuses a contract and a handler table that disagree."""

from __future__ import annotations

import copy

import pytest
from support import make_mock

from layers_mock_server.http.app import build_app
from layers_mock_server.spec import Spec, SpecError, partner_spec


def test_operation_without_handler_fails_loudly() -> None:
    document = copy.deepcopy(partner_spec().document)
    document["paths"]["/v1/whoami"]["get"]["operationId"] = "whoAmINow"
    with pytest.raises(
        SpecError, match=r"without a handler: \['whoAmINow'\].*without an operation: \['whoami'\]"
    ):
        build_app(make_mock().deps, spec=Spec(document))


def test_broken_ref_fails_loudly() -> None:
    document = copy.deepcopy(partner_spec().document)
    document["paths"]["/v1/whoami"]["get"]["responses"]["200"] = {
        "$ref": "#/components/responses/Nope"
    }
    with pytest.raises(SpecError, match="points nowhere"):
        Spec(document)


def test_routes_scopes_and_classes_come_from_the_spec() -> None:
    ops = partner_spec().operations
    assert ops["createInfluencer"].scope == "influencers:write"
    assert ops["createInfluencer"].rate_class == "long-running"
    assert ops["getInfluencer"].scope == "influencers:write"  # sic: reads use the write scope
    assert ops["whoami"].scope is None
