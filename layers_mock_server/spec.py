"""The contract, loaded once: operations, scopes, rate classes and compiled validators.

Everything the server knows about an operation comes from `openapi/`: its route, the scope in
its security requirement, its `x-rate-class`, its parameters and body schema, and the schema of
every response it may send. Nothing here restates a schema in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml

from .yaml_cache import load_yaml

# The repository's openapi/ ships inside the package (layers_mock_server/openapi links to it in a
# checkout; the wheel holds a copy), so an installed mock finds its contract wherever it lives.
SPEC_DIR: Traversable = files("layers_mock_server") / "openapi"
PARTNER_SPEC = SPEC_DIR / "layers.yaml"
CONTROL_SPEC = SPEC_DIR / "control.yaml"
NOT_SIMULATED_SPEC = SPEC_DIR / "not-simulated.yaml"
JSON = "application/json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class SpecError(RuntimeError):
    """The contract cannot drive the server: a broken $ref, a missing handler, and so on."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    location: str  # query | header | path
    required: bool
    schema: dict[str, Any]
    validator: Any
    default: Any = None


class ResponseContract:
    """What one (operation, status) may send. Compiled on first use: only strict mode and the
    tests read these, and compiling every response schema at start-up would cost a plain
    `serve` a third of its memory."""

    __slots__ = (
        "_compile",
        "_headers",
        "_media",
        "_schema",
        "_validators",
        "media_types",
        "required_headers",
    )

    def __init__(
        self,
        compile_schema: Callable[[dict[str, Any], bool], Any],
        schema: dict[str, Any] | None,
        required_headers: tuple[str, ...],
        header_schemas: dict[str, dict[str, Any]],
        media: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._compile = compile_schema
        self._schema = schema
        self._headers = header_schemas
        self._validators: tuple[Any, dict[str, Any]] | None = None
        self.required_headers = required_headers
        # every declared media type and its schema: JSON for the API, text/html for the dashboard
        self._media = media if media is not None else {} if schema is None else {JSON: schema}
        self.media_types = tuple(self._media)

    def _compiled(self) -> tuple[Any, dict[str, Any]]:
        if self._validators is None:
            body = None if self._schema is None else self._compile(self._schema, True)
            headers = {n: self._compile(h, False) for n, h in self._headers.items()}
            self._validators = (body, headers)
        return self._validators

    @property
    def validator(self) -> Any | None:
        """None when the response has no body."""
        return self._compiled()[0]

    @property
    def header_validators(self) -> dict[str, Any]:
        return self._compiled()[1]

    def validator_for(self, media_type: str) -> Any | None:
        """The body validator for one media type; None when no body of that type is declared."""
        if media_type == JSON:
            return self.validator
        schema = self._media.get(media_type)
        return None if schema is None else self._compile(schema, True)


@dataclass(slots=True)
class Operation:
    operation_id: str
    method: str
    path: str
    scope: str | None
    rate_class: str
    params: list[Param] = field(default_factory=list)
    body_validator: Any | None = None
    body_required: bool = False
    body_schema: dict[str, Any] | None = None
    unknown_field_messages: dict[str, str] = field(default_factory=dict)
    responses: dict[str, ResponseContract] = field(default_factory=dict)

    def response_for(self, status: int) -> ResponseContract | None:
        return self.responses.get(str(status)) or self.responses.get(f"{str(status)[0]}XX")


class Spec:
    def __init__(self, document: dict[str, Any], source: str = "spec") -> None:
        self.document = document
        self.source = source
        self.components = document.get("components", {})
        self._validators: dict[tuple[bytes, bool], Any] = {}
        self.operations: dict[str, Operation] = {}
        for path, raw_item in document.get("paths", {}).items():
            item = self.resolve(raw_item)
            for method in METHODS:
                if method in item:
                    op = self._operation(path, method, item, item[method])
                    if op.operation_id in self.operations:
                        raise SpecError(f"{source}: operationId {op.operation_id} is used twice")
                    self.operations[op.operation_id] = op

    @classmethod
    def load(cls, path: Traversable | str) -> Spec:
        """A file path, or a resource inside the package (PARTNER_SPEC, CONTROL_SPEC)."""
        path = Path(path) if isinstance(path, str) else path
        try:
            text = path.read_text(encoding="utf-8")
            return cls(load_yaml(text), source=str(path))
        except (OSError, yaml.YAMLError) as exc:
            raise SpecError(f"cannot read the contract {path}: {exc}") from exc

    def resolve(self, node: Any) -> Any:
        """Follow a local `$ref` (components/parameters, responses, headers, request bodies)."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and len(node) == 1:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise SpecError(f"{self.source}: only local $refs are supported, got {ref}")
            target: Any = self.document
            for escaped in ref[2:].split("/"):
                part = escaped.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SpecError(f"{self.source}: $ref {ref} points nowhere")
                target = target[part]
            node = target
            seen += 1
            if seen > 32:
                raise SpecError(f"{self.source}: $ref cycle at {ref}")
        return node

    def validator(self, schema: dict[str, Any], formats: bool = False) -> Any:
        """Compile once per distinct schema, with the document's components as root.

        Dozens of responses share a schema (every 401 is the same envelope): compiling each
        distinct one once keeps start-up fast and the server's resident memory small.
        """
        cache_key = (orjson.dumps(schema, option=orjson.OPT_SORT_KEYS), formats)
        found = self._validators.get(cache_key)
        if found is not None:
            return found
        root = {**schema, "components": self._components_for(schema)}
        try:
            compiled = jsonschema_rs.Draft202012Validator(root, validate_formats=formats)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            raise SpecError(f"{self.source}: schema does not compile: {exc}") from exc
        self._validators[cache_key] = compiled
        return compiled

    def _components_for(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The components `schema` reaches through its `$ref`s, transitively.

        jsonschema_rs keeps a compiled copy of the whole root it is given: with every component
        in each root, the ~15 validators compiled at start-up held ~9 MB of the idle server's
        resident memory; with only what each one reaches, ~0.3 MB. Any `$ref` not of the form
        `#/components/<section>/<name>...` (or naming nothing) gets all the components, so
        such a schema compiles, or fails to, exactly as before.
        """
        kept: dict[str, dict[str, Any]] = {}
        todo = _refs(schema)
        while todo:
            ref = todo.pop()
            parts = ref.split("/")
            if len(parts) < 4 or parts[:2] != ["#", "components"]:
                return self.components
            section, name = parts[2], parts[3]
            if name in kept.get(section, {}):
                continue
            node = self.components.get(section, {}).get(name)
            if node is None:
                return self.components
            kept.setdefault(section, {})[name] = node
            todo.extend(_refs(node))
        return kept

    def schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return self.resolve(schema)

    def _operation(
        self, path: str, method: str, item: dict[str, Any], raw: dict[str, Any]
    ) -> Operation:
        where = f"{self.source}: {method.upper()} {path}"
        operation_id = raw.get("operationId")
        if not operation_id:
            raise SpecError(f"{where}: has no operationId")
        scope = None
        for requirement in raw.get("security", self.document.get("security", [])):
            for scopes in requirement.values():
                if scopes:
                    scope = scopes[0]
        op = Operation(
            operation_id=operation_id,
            method=method.upper(),
            path=path,
            scope=scope,
            rate_class=raw.get("x-rate-class", "read-light"),
        )
        for declared in [*item.get("parameters", []), *raw.get("parameters", [])]:
            param = self.resolve(declared)
            schema = param.get("schema", {})
            op.params.append(
                Param(
                    name=param["name"],
                    location=param["in"],
                    required=bool(param.get("required", param["in"] == "path")),
                    schema=schema,
                    validator=self.validator(schema),
                    default=self.resolve(schema).get("default"),
                )
            )
        if "requestBody" in raw:
            body = self.resolve(raw["requestBody"])
            media = body.get("content", {}).get("application/json")
            if media is None:
                raise SpecError(f"{where}: the request body must be application/json")
            op.body_required = bool(body.get("required", False))
            op.body_schema = self.resolve(media["schema"])
            op.body_validator = self.validator(media["schema"])
            op.unknown_field_messages = dict(op.body_schema.get("x-unknown-field-messages", {}))
        for status, declared_response in raw.get("responses", {}).items():
            response = self.resolve(declared_response)
            content = response.get("content", {})
            media = content.get("application/json")
            headers = {
                name.lower(): self.resolve(h) for name, h in response.get("headers", {}).items()
            }
            op.responses[str(status)] = ResponseContract(
                self.validator,
                media["schema"] if media else None,
                tuple(n for n, h in headers.items() if h.get("required")),
                {n: h["schema"] for n, h in headers.items() if "schema" in h},
                {media_type: m.get("schema", {}) for media_type, m in content.items()},
            )
        return op


@cache
def partner_spec() -> Spec:
    return Spec.load(PARTNER_SPEC)


@cache
def control_spec() -> Spec:
    return Spec.load(CONTROL_SPEC)


@cache
def not_simulated_spec() -> Spec:
    return Spec.load(NOT_SIMULATED_SPEC)


def _refs(node: Any) -> list[str]:
    """Every string `$ref` anywhere in a schema (a stray one only keeps more components)."""
    found: list[str] = []
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.append(ref)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return found
