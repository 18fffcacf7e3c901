"""The dashboard's static files, read from inside the package with importlib.resources.

They are read once and served from memory with a content hash in their URL, so a browser may
keep them for a year and still never runs yesterday's script against today's server.
`stylesheet()` is public: the conformance runner's HTML report inlines the same look.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

STYLESHEET = "layers.css"
SCRIPT = "dashboard.js"
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    media_type: str
    body: bytes
    version: str  # a short content hash, for cache busting

    @property
    def url(self) -> str:
        return f"/_mock/ui/assets/{self.name}?v={self.version}"


KNOWN = frozenset({STYLESHEET, SCRIPT})


def asset(name: str) -> Asset | None:
    """The named file of ui/static, or None: only the fixed set of KNOWN names is ever served.

    The name is checked before the cache: a cache keyed by whatever a public route was asked
    for would grow by one entry per distinct name, without bound.
    """
    return _load(name) if name in KNOWN else None


@cache
def _load(name: str) -> Asset:
    body = files(__package__).joinpath("static", name).read_bytes()
    media_type = MEDIA_TYPES[name[name.rindex(".") :]]
    return Asset(name, media_type, body, hashlib.sha256(body).hexdigest()[:12])


def stylesheet() -> str:
    """The one stylesheet of layers-mock's HTML: the dashboard and the conformance report."""
    found = asset(STYLESHEET)
    assert found is not None
    return found.body.decode("utf-8")


def asset_cache_size() -> int:
    """How many files are held in memory: at most len(KNOWN), whatever was requested."""
    return _load.cache_info().currsize
