"""What the app is given instead of reaching for globals: the simulator, the journal, settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .core.chaos import ChaosProfile
from .core.jobs import Progression
from .core.journal import Journal
from .core.simulator import Simulator


@dataclass(slots=True)
class Deps:
    sim: Simulator
    journal: Journal = field(default_factory=Journal)
    strict: bool = False
    progression: Progression = "time"
    admin_token: str | None = None  # required on /_mock/ when the server is not on loopback
    chaos: ChaosProfile | None = None
    shared: Any = None  # http/shared.SharedGate on a shared store (many workers), else None
