"""Seeded ids: same seed and sequence, same ids; an Idempotency-Key scope ignores order."""

from __future__ import annotations

import re

from mockserver.core.ids import IdMint, ulid_from, uuid_from

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def test_same_seed_same_sequence_same_ids() -> None:
    a, b = IdMint(7), IdMint(7)
    assert [a.uuid("inf") for _ in range(3)] == [b.uuid("inf") for _ in range(3)]
    assert IdMint(8).uuid("inf") != IdMint(7).uuid("inf")


def test_keyed_ids_do_not_depend_on_order() -> None:
    a = IdMint(7)
    a.uuid("inf")
    a.uuid("inf")
    assert a.uuid("inf", scope="k1") == IdMint(7).uuid("inf", scope="k1")


def test_ulids_are_crockford_and_carry_mock_time() -> None:
    value = ulid_from(7, "x", 1_767_225_600_000)
    assert ULID.match(value)
    assert value[:10] == ulid_from(9, "y", 1_767_225_600_000)[:10]
    assert re.match(
        r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", uuid_from(7, "x")
    )
