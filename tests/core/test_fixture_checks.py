"""Fixture files are checked when loaded: a bad entry is one clear error naming file and path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from layers_mock_server.core.fixtures import DEFAULT_FIXTURES, FixtureError, parse_fixtures
from layers_mock_server.core.journal import Journal
from layers_mock_server.fixturecheck import check_fixtures
from layers_mock_server.settings import Settings, fixtures_of

DEFAULT: dict[str, Any] = yaml.safe_load(DEFAULT_FIXTURES.read_text(encoding="utf-8"))


def with_key(key: str) -> dict[str, Any]:
    document = copy.deepcopy(DEFAULT)
    document["organizations"][0]["keys"][0]["key"] = key
    return document


@pytest.mark.parametrize(
    "key",
    [
        "lp_test_my_id_Zx81Qm4TnR7vKp2W",  # `_` in the id: the journal showed `_Zx81...`
        "lp_test_acme_Zx81-Qm4T",
        "lp_test_acme_",
        "lp_test__secret",
        "lp_prod_acme_secret",
        "lp_test_acmé_secret",
        "lp_test_acme_secret\n",
        " lp_test_acme_secret",
    ],
)
def test_a_key_the_journal_could_not_redact_is_refused_at_load(key: str) -> None:
    with pytest.raises(FixtureError) as refused:
        parse_fixtures(with_key(key), source="team.yaml")
    message = str(refused.value)
    assert message.startswith("team.yaml: organizations[0].keys[0]: key must match ")
    assert "Zx81" not in message and "secret" not in message.replace("<secret>", "")


def _shown(authorization: bytes) -> str:
    journal = Journal(bodies=True)
    exchange = ([(b"authorization", authorization)], b"", [], b"")
    journal.add(0, "GET", "/v1/whoami", "", 401, "r", None, "whoami", None, exchange)
    return str(journal.query(limit=1)[0][0]["request"]["headers"]["authorization"])


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        (b"Bearer lp_test_acmefull_Zx81Qm4TnR7vKp2W", "Bearer lp_test_acmefull_***"),
        (b"Bearer lp_test_my_id_Zx81Qm4TnR7vKp2W", "Bearer ***"),
        (b"Bearer lp_test_acme_Zx81-Qm4T", "Bearer ***"),
        (b"Bearer lp_test_acme_Zx81 extra", "Bearer ***"),
        (b"lp_test_acme_Zx81Qm4T", "***"),
        (b"Zx81Qm4T lp_test_acme_Zx81Qm4T", "***"),
        (b"Basic Zx81Qm4TnR7vKp2W", "Basic ***"),
        (b"Bearer  lp_test_acme_Zx81Qm4T", "Bearer ***"),
        (b"Bearer \xff\xfeZx81", "Bearer ***"),
    ],
)
def test_a_secret_header_shows_at_most_the_key_prefix(sent: bytes, shown: str) -> None:
    assert _shown(sent) == shown


def test_free_text_hides_everything_after_the_key_id() -> None:
    journal = Journal(bodies=True)
    body = b'{"note": "lp_test_my_id_Zx81Qm4TnR7vKp2W and lp_live_a_b-c_d"}'
    journal.add(0, "POST", "/v1/x", "", 200, "r", None, "x", None, ([], body, [], b""))
    text = journal.query(limit=1)[0][0]["request"]["body"]
    assert "Zx81" not in text and "b-c" not in text and "_d" not in text
    assert text == '{"note": "lp_test_my_*** and lp_live_a_***"}'


def with_project(**fields: Any) -> dict[str, Any]:
    document = copy.deepcopy(DEFAULT)
    document["organizations"][0]["projects"][0].update(fields)
    return document


def test_the_shipped_fixtures_pass_the_contract_check() -> None:
    check_fixtures(copy.deepcopy(DEFAULT), "default.yaml")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"brandVoice": "wity"}, "projects[0].brandVoice: Must be one of: "),
        (
            {"primaryLanguage": "klingon"},
            "projects[0].primaryLanguage: Must match ^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$.",
        ),
        ({"primaryLanguage": 7}, "projects[0].primaryLanguage: "),
        ({"timezone": "Mars/Olympus"}, "projects[0].timezone: "),
        ({"targetGender": None}, "projects[0].targetGender: "),
        ({"appName": "x"}, "projects[0].appName: Must be at least 3 characters."),
        ({"tagline": "t" * 81}, "projects[0].tagline: Must be at most 80 characters."),
        ({"metadata": "crm"}, "projects[0].metadata: Must be an object."),
        ({"ownerEmail": "not an email"}, r"projects[0].ownerEmail: Must match ^[^@\s]+@[^@\s]+$."),
        ({"name": ["Acme"]}, "projects[0].name: Must be a string."),
    ],
)
def test_a_project_field_its_schema_refuses_names_file_and_path(
    tmp_path: Path, fields: dict[str, Any], says: str
) -> None:
    team = tmp_path / "team.yaml"
    team.write_text(yaml.safe_dump(with_project(**fields)))
    with pytest.raises(FixtureError) as refused:
        fixtures_of(Settings(fixtures=team))
    message = str(refused.value)
    assert message.startswith(f"{team}: organizations[0].") and says in message, message
    with pytest.raises(FixtureError) as inline:
        fixtures_of(Settings(fixtures=with_project(**fields)))
    assert str(inline.value).startswith("fixtures: organizations[0].projects[0].")


def test_an_organization_owner_email_is_checked_too() -> None:
    document = copy.deepcopy(DEFAULT)
    document["organizations"][1]["ownerEmail"] = "nobody"
    with pytest.raises(FixtureError) as refused:
        fixtures_of(Settings(fixtures=document))
    assert (
        str(refused.value)
        == r"fixtures: organizations[1].ownerEmail: Must match ^[^@\s]+@[^@\s]+$."
    )


def test_a_project_created_after_the_clocks_start_is_refused_at_load() -> None:
    """A project the mock's clock has not reached yet: every export would hold a project
    created after its organization's now, which an import refuses (no clock writes that)."""
    document = copy.deepcopy(DEFAULT)
    document["organizations"][0]["projects"][0]["createdAt"] = "2026-01-01T00:00:00.001Z"
    with pytest.raises(FixtureError) as refused:
        parse_fixtures(document, source="team.yaml")
    assert str(refused.value) == (
        "team.yaml: organizations[0].projects[0]: createdAt 2026-01-01T00:00:00.001Z is after "
        "the mock clock's start, 2026-01-01T00:00:00.000Z (a project cannot be created in its "
        "future)"
    )
    document["organizations"][0]["projects"][0]["createdAt"] = "2026-01-01T00:00:00.000Z"
    assert parse_fixtures(document, source="team.yaml").projects  # the start itself: taken
