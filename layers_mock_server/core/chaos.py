"""A chaos profile: background faults drawn from the seed, for rehearsing a bad day.

    faults: {"429": 0.02, "500": 0.01, "503": 0.01, "drop": 0.005}
    latency: {probability: 0.1, ms: 800}

The draw for request n depends on the seed and n alone, so two runs with one seed inject the
same faults into the same requests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .prefer import FAULTS, MAX_LATENCY_MS, Preferences
from .rules import chance


class ChaosError(ValueError):
    """A chaos profile that cannot be used; the message says which entry."""


@dataclass(frozen=True, slots=True)
class ChaosProfile:
    faults: dict[str, float] = field(default_factory=dict)
    latency_probability: float = 0.0
    latency_ms: int = 0

    @classmethod
    def load(cls, path: Path | str) -> ChaosProfile:
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ChaosError(f"{path}: {exc}") from exc
        return cls.parse(document, str(path))

    @classmethod
    def parse(cls, document: Any, source: str = "chaos") -> ChaosProfile:
        """Every shape YAML can give is either the README's profile or a ChaosError naming
        the entry: `serve` prints it as one sentence, never a traceback."""
        if not isinstance(document, dict) or set(document) - {"faults", "latency"}:
            raise ChaosError(f"{source}: expected a mapping with `faults` and/or `latency`")
        faults_in = document.get("faults") or {}
        latency = document.get("latency") or {}
        for name, value in (("faults", faults_in), ("latency", latency)):
            if not isinstance(value, dict):
                raise ChaosError(f"{source}: {name} must be a mapping, as in the README's example")
        faults: dict[str, float] = {}
        for name, p in ((str(k), v) for k, v in faults_in.items()):
            if name not in FAULTS or not _is_number(p) or not 0 <= p <= 1:
                raise ChaosError(f"{source}: faults.{name} must be one of {FAULTS} with 0..1")
            faults[name] = float(p)
        if sum(faults.values()) > 1:
            raise ChaosError(f"{source}: fault probabilities add up to more than 1")
        if set(latency) - {"probability", "ms"}:
            raise ChaosError(f"{source}: latency takes `probability` and `ms` only")
        probability, ms = latency.get("probability", 0), latency.get("ms", 0)
        if not (_is_number(probability) and 0 <= probability <= 1) or not (
            isinstance(ms, int) and not isinstance(ms, bool) and 0 <= ms <= MAX_LATENCY_MS
        ):
            raise ChaosError(
                f"{source}: latency needs probability 0..1 and ms a whole number"
                f" 0..{MAX_LATENCY_MS}"
            )
        return cls(faults, float(probability), ms)

    def digest(self) -> str:
        """What the profile does, as a digest: the same for two files that say the same."""
        what = [sorted(self.faults.items()), self.latency_probability, self.latency_ms]
        return hashlib.sha256(json.dumps(what).encode()).hexdigest()

    def draw(self, seed: int, sequence: int) -> Preferences | None:
        fault = None
        roll = chance(seed, f"chaos:fault:{sequence}")
        for name, probability in self.faults.items():
            if roll < probability:
                fault = name
                break
            roll -= probability
        slow = (
            self.latency_ms and chance(seed, f"chaos:latency:{sequence}") < self.latency_probability
        )
        if fault is None and not slow:
            return None
        return Preferences(fault=fault, latency_ms=self.latency_ms if slow else None)


def _is_number(value: Any) -> bool:
    """A probability as YAML gives one: an int or a float, not a bool (YAML's `true` is 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
