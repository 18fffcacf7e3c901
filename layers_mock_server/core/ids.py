"""Seeded identifiers, names and URLs.

Every id the mock mints is a hash of the seed and a salt. Without an Idempotency-Key the salt
is a per-kind sequence number, so the same request sequence gives the same ids; with one, the
salt is the idempotency scope itself, so the ids depend on the seed and the key alone. Either
way a minted id never names a record that exists: a salt whose id is taken is followed by the
next one (for a key, `scope:1`, `scope:2`, ...), so a key reused after its record expired
mints new ids instead of overwriting what it created a day ago.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from functools import partial
from hashlib import blake2b

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two Crockford digits for every 10-bit value: a ULID is 13 table lookups, not 26 divmods.
_PAIRS = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
_TIME_SHIFTS = (40, 30, 20, 10, 0)  # 48 bits of time, the top two of 50 zero: 5 pairs
_last_time: tuple[int, str] = (-1, "")  # (at_ms, its 10 digits): requests share a millisecond
# digest size -> seed -> a keyed, unused hasher (sizes: a uuid, a ULID's randomness, a name pick)
_KEYED: dict[int, dict[int, blake2b]] = {}
# a uuid's variant digit (hex digit 16): its top two bits forced to 10
_VARIANT = {f"{v:x}": f"{(v & 0x3) | 0x8:x}" for v in range(16)}
MAX_SEED = 2**64 - 1  # the seed keys BLAKE2b as 8 big-endian bytes

FIRST_NAMES = {
    "female": ("Ava", "Nova", "Maya", "Luna", "Iris", "Zoe", "Mila", "Elena", "Hana", "Priya"),
    "male": ("Leo", "Kai", "Milo", "Theo", "Ezra", "Omar", "Jonas", "Ravi", "Mateo", "Finn"),
    "non_binary": ("River", "Sage", "Rowan", "Quinn", "Ash", "Remy", "Skyler", "Indigo"),
}
LAST_NAMES = ("Chen", "Park", "Rivera", "Okafor", "Novak", "Haddad", "Silva", "Moreau", "Kaur")
MEDIA_BASE = "https://media.layers-mock.invalid/portraits"


def check_seed(value: object) -> int:
    """The seed as an int, or a ValueError: every id is hashed with it, so a seed that cannot
    key the hash would break every later request, not just this one."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON `1.0` is the integer 1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"the seed must be a whole number from 0 to {MAX_SEED}")
    return value


def _digest(seed: int, salt: str, size: int) -> bytes:
    # A keyed BLAKE2b starts by compressing the key block; copying a hasher that has already
    # done so gives the same digest for about half the cost.
    by_seed = _KEYED.get(size)
    if by_seed is None:
        by_seed = _KEYED[size] = {}
    keyed = by_seed.get(seed)
    if keyed is None:
        keyed = blake2b(digest_size=size, key=seed.to_bytes(8, "big"))
        if len(by_seed) < 64:
            by_seed[seed] = keyed
    hasher = keyed.copy()
    hasher.update(salt.encode())
    return hasher.digest()


def uuid_from(seed: int, salt: str) -> str:
    """A version-4-shaped UUID: partners validate ids with uuid regexes."""
    # The version and variant bits are set on the hex digits: digit 12 is the version (4),
    # digit 16 keeps its two low bits under the variant's 10.
    h = _digest(seed, salt, 16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def ulid_from(seed: int, salt: str, at_ms: int) -> str:
    """A ULID whose time part is mock time and whose randomness is seeded."""
    # 26 digits of 5 bits = 130 bits, the top two zero: 48 bits of time, 80 of randomness.
    # Both parts fall on digit boundaries (50 = 10 digits, 80 = 16), so they are encoded
    # apart, and the time's digits once per millisecond rather than once per id.
    global _last_time  # noqa: PLW0603 - a one-entry memo
    at, head = _last_time
    if at != at_ms:
        t = at_ms & ((1 << 48) - 1)
        head = "".join([_PAIRS[(t >> shift) & 1023] for shift in _TIME_SHIFTS])
        _last_time = (at_ms, head)
    v = int.from_bytes(_digest(seed, salt, 10), "big")
    p = _PAIRS  # 80 bits, 10 at a time from the top: one f-string, no list to join (~0.6 µs)
    return (
        f"{head}{p[v >> 70]}{p[(v >> 60) & 1023]}{p[(v >> 50) & 1023]}{p[(v >> 40) & 1023]}"
        f"{p[(v >> 30) & 1023]}{p[(v >> 20) & 1023]}{p[(v >> 10) & 1023]}{p[v & 1023]}"
    )


def persona_name(seed: int, influencer_id: str, gender: str) -> str:
    pick = int.from_bytes(_digest(seed, "name:" + influencer_id, 4), "big")
    firsts = FIRST_NAMES.get(gender, FIRST_NAMES["female"])
    return f"{firsts[pick % len(firsts)]} {LAST_NAMES[(pick // 97) % len(LAST_NAMES)]}"


def portrait_url(influencer_id: str) -> str:
    return f"{MEDIA_BASE}/{influencer_id}.png"


class IdMint:
    """Counters per kind of id; the counters are state and travel with exports."""

    __slots__ = ("counters", "seed")

    def __init__(self, seed: int, counters: dict[str, int] | None = None) -> None:
        self.seed = check_seed(seed)
        self.counters: dict[str, int] = dict(counters or {})

    def _salt(self, kind: str, scope: str | None) -> str:
        if scope is not None:
            return f"{kind}:key:{scope}"
        n = self.counters.get(kind, 0) + 1
        self.counters[kind] = n
        return f"{kind}:seq:{n}"

    def _next_free(
        self,
        kind: str,
        scope: str | None,
        salt: str,
        *,
        render: Callable[[str], str],
        taken: Container[str],
        prefix: str,
    ) -> str:
        """The rare path: the first salt's id is taken (a reused key, an imported counter)."""
        retry = 0
        while True:
            retry += 1
            value = render(self._salt(kind, None) if scope is None else f"{salt}:{retry}")
            if prefix + value not in taken:
                return value

    def uuid(
        self,
        kind: str,
        scope: str | None = None,
        taken: Container[str] = (),
        prefix: str = "",
    ) -> str:
        """A uuid; with `taken`, never one whose `prefix + uuid` is in it."""
        salt = self._salt(kind, scope)
        value = uuid_from(self.seed, salt)
        if taken and prefix + value in taken:
            render = partial(uuid_from, self.seed)
            return self._next_free(kind, scope, salt, render=render, taken=taken, prefix=prefix)
        return value

    def ulid(
        self,
        kind: str,
        at_ms: int,
        scope: str | None = None,
        taken: Container[str] = (),
        prefix: str = "",
    ) -> str:
        salt = self._salt(kind, scope)
        value = ulid_from(self.seed, salt, at_ms)
        if taken and prefix + value in taken:
            render = partial(_ulid_at, self.seed, at_ms)
            return self._next_free(kind, scope, salt, render=render, taken=taken, prefix=prefix)
        return value


def _ulid_at(seed: int, at_ms: int, salt: str) -> str:
    return ulid_from(seed, salt, at_ms)
