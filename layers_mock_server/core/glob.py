"""Path globs for rules, matched in one pass over the path whatever the pattern.

`*` matches any run of characters within a segment, `**` (any run of two or more stars)
matches across segments; a pattern without a star matches as a prefix. The matcher is a
bit-parallel NFA (shift-and): bit i of the state means "the first i tokens of the pattern
match what was read so far", and each character of the path costs a few integer operations.
A backtracking regex, which this replaced, spent 17 s on `/****************X` (issue 9, D6)
and blocked the server meanwhile.
"""

from __future__ import annotations


def _tokens(pattern: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] != "*":
            tokens.append(pattern[i])
            i += 1
            continue
        j = i
        while j < len(pattern) and pattern[j] == "*":
            j += 1
        tokens.append("**" if j - i >= 2 else "*")
        i = j
    return tokens


class PathGlob:
    __slots__ = ("_accept", "_any_star", "_cross", "_literal", "_prefix")

    def __init__(self, pattern: str) -> None:
        self._prefix: str | None = None if "*" in pattern else pattern
        self._literal: dict[str, int] = {}
        self._any_star = 0  # tokens that may consume a character other than "/"
        self._cross = 0  # tokens that may consume "/" too
        tokens = _tokens(pattern)
        for i, part in enumerate(tokens):
            if part == "**":
                self._cross |= 1 << i
                self._any_star |= 1 << i
            elif part == "*":
                self._any_star |= 1 << i
            else:
                self._literal[part] = self._literal.get(part, 0) | 1 << i
        self._accept = 1 << len(tokens)

    def _closure(self, state: int) -> int:
        # A star may match nothing. No two star tokens are adjacent, so one step is enough.
        return state | (state & self._any_star) << 1

    def matches(self, path: str) -> bool:
        if self._prefix is not None:
            return path.startswith(self._prefix)
        literal, any_star, cross = self._literal, self._any_star, self._cross
        state = self._closure(1)
        for char in path:
            moved = (state & literal.get(char, 0)) << 1
            stayed = state & (cross if char == "/" else any_star)
            state = self._closure(moved | stayed)
            if not state:
                return False
        return bool(state & self._accept)
