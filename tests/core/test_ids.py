"""Seeded ids: same seed and sequence, same ids; an Idempotency-Key scope ignores order."""

from __future__ import annotations

import re

from layers_mock_server.core.ids import IdMint, ulid_from, uuid_from

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


def test_a_minted_id_never_names_a_record_that_exists() -> None:
    """Issue 9, D2: a key reused after its record expired minted the same ids again."""
    first = IdMint(7).uuid("inf", scope="k1")
    again = IdMint(7).uuid("inf", scope="k1", taken={"inf_" + first}, prefix="inf_")
    assert again != first
    assert again == IdMint(7).uuid("inf", scope="k1", taken={"inf_" + first}, prefix="inf_")
    mint = IdMint(7)
    counted = IdMint(7).uuid("inf")  # what the counter mints first
    assert mint.uuid("inf", taken={"inf_" + counted}, prefix="inf_") != counted
    assert mint.counters["inf"] == 2  # the taken number is used up, not reused


def test_a_seed_is_a_whole_number_of_64_bits() -> None:
    """Issue 9, D1: a float or out-of-range seed broke every later request."""
    import pytest

    from layers_mock_server.core.ids import check_seed

    assert check_seed(1.0) == 1
    assert check_seed(2**64 - 1) == 2**64 - 1
    for bad in (1.5, -1, 2**64, True, "7", None):
        with pytest.raises(ValueError, match="seed"):
            check_seed(bad)


def test_canonical_ids_are_remembered_without_changing_an_answer() -> None:
    """canonical_id remembers its answers per prefix; asked again, and past the number it
    keeps, it answers as the pattern does: a uuid with or without the prefix, nothing else."""
    from layers_mock_server.core.records import _CANONICAL_MAX, canonical_id

    uuid = "254a4ce1-f4ca-42b1-9e36-17ca45ef3d39"
    for _ in range(2):
        assert canonical_id("prj_", "prj_" + uuid) == "prj_" + uuid
        assert canonical_id("prj_", uuid) == "prj_" + uuid
        assert canonical_id("inf_", "prj_" + uuid) is None  # another kind's prefix
        assert canonical_id("prj_", uuid.upper()) is None
        assert canonical_id("prj_", "prj_" + uuid[:-1]) is None
    for n in range(_CANONICAL_MAX + 10):
        assert canonical_id("prj_", f"prj_{n:08x}-0000-4000-8000-000000000000") is not None
        assert canonical_id("prj_", f"not-{n}") is None
    assert canonical_id("prj_", uuid) == "prj_" + uuid
