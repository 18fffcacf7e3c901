"""The contract's YAML, parsed once per content and kept as JSON in the user's cache directory.

Parsing openapi/*.yaml is most of `serve`'s start-up (~0.2 s of ~0.6 s even with libyaml's
CSafeLoader): the Python side of PyYAML builds ~14,000 nodes. The parsed document is plain JSON
(strings, numbers, lists, maps), which orjson reads in about a millisecond, so it is kept as
`<sha256 of the text>.json` under `$LAYERS_MOCK_CACHE_DIR`, else `$XDG_CACHE_HOME/layers-mock`,
else `~/.cache/layers-mock`.

Safe by construction rather than by care:
- the key is the hash of the exact text parsed, so an edited contract never meets a stale entry;
- an entry is written to a temporary file and renamed into place (atomic): a reader sees a whole
  file or none, even with several servers starting at once;
- anything that goes wrong with the cache (no home, a read-only disk, a truncated or foreign
  file, a document JSON cannot hold exactly) falls back to parsing the YAML: the cache can make
  start-up faster, never different. `LAYERS_MOCK_CACHE_DIR=` (empty) turns it off.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson
import yaml

# libyaml's loader when PyYAML was built with it: ten times faster, the same safe subset.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FORMAT = b"layers-mock yaml cache 1\n"  # part of the key: a new format never reads an old file


def cache_dir() -> Path | None:
    """Where entries live; None when caching is off or there is no home to put it in."""
    explicit = os.environ.get("LAYERS_MOCK_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "layers-mock"
    try:
        return Path.home() / ".cache" / "layers-mock"
    except RuntimeError:  # no home directory to be found
        return None


def load_yaml(text: str) -> Any:
    """`yaml.load(text, SAFE_LOADER)`, from the cache when this exact text was parsed before."""
    directory = cache_dir()
    if directory is None:
        return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - the safe loader
    key = hashlib.sha256(FORMAT + text.encode("utf-8")).hexdigest()
    entry = directory / f"{key}.json"
    try:
        cached = orjson.loads(entry.read_bytes())
        if isinstance(cached, dict) and cached.get("key") == key and "document" in cached:
            return cached["document"]
    except (OSError, orjson.JSONDecodeError):
        pass  # none yet, unreadable or cut short: parse, and try to write a good one
    document = yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - the safe loader
    _store(directory, entry, key, document)
    return document


def _store(directory: Path, entry: Path, key: str, document: Any) -> None:
    try:
        data = orjson.dumps({"key": key, "document": document})
    except TypeError:
        return  # not plain JSON (a non-string key, say): not cached
    if orjson.loads(data)["document"] != document:
        return  # JSON would change it (a YAML date becomes text): not cached
    import tempfile  # only when writing: it imports `random`, which serve does not need

    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, entry)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a read-only or full disk: the next start parses again, nothing worse
