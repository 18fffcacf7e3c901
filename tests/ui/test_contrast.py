"""Every text colour of the stylesheet on its background reaches WCAG AA (4.5:1)."""

from __future__ import annotations

import re

import pytest

from layers_mock_server.ui.assets import stylesheet

# (text, background) pairs as the stylesheet uses them
PAIRS = [
    ("--fg", "--bg"),
    ("--fg", "--panel"),
    ("--fg", "--code-bg"),
    ("--muted", "--panel"),
    ("--muted", "--bg"),
    ("--muted", "--code-bg"),
    ("--accent", "--panel"),
    ("--accent-fg", "--accent"),
    ("--ok", "--ok-bg"),
    ("--warn", "--warn-bg"),
    ("--bad", "--bad-bg"),
    ("--bad", "--panel"),
    ("--info", "--info-bg"),
    ("--idle", "--idle-bg"),
    ("--fg", "--warn-bg"),  # an injected journal row
    ("--muted", "--warn-bg"),
    ("--ok", "--panel"),  # the conformance report's verdicts on its page
    ("--idle", "--panel"),
]


def colours() -> dict[str, str]:
    return dict(re.findall(r"(--[a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;", stylesheet()))


def luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_contrast_is_at_least_aa(text: str, background: str) -> None:
    palette = colours()
    lighter, darker = sorted((luminance(palette[text]), luminance(palette[background])))[::-1]
    ratio = (lighter + 0.05) / (darker + 0.05)
    assert ratio >= 4.5, f"{text} on {background}: {ratio:.2f}:1"
