"""A fixtures document checked against the partner contract's own schemas, at load.

A fixture project is what a partner could have created: each of its fields that
CreateProjectRequest declares (brandVoice, primaryLanguage, timezone, name, ...) must be valid
by that field's schema, compiled by the same validator the server uses on request bodies.
Otherwise a typo in a fixture file (`brandVoice: wity`) starts a mock whose GET /v1/projects
answers with a body its own contract refuses. The error names the file and the entry's path.
"""

from __future__ import annotations

from typing import Any

from .core.fixtures import FixtureError
from .spec import partner_spec
from .validation import problems

PROJECT_SCHEMA = "CreateProjectRequest"
# Organization fields and the schema each is held to (a name in components/schemas).
ORGANIZATION_FIELDS = {"ownerEmail": "Email"}


def check_fixtures(document: dict[str, Any], source: str) -> None:
    """Raise FixtureError for the first field of the document its schema refuses."""
    spec = partner_spec()
    schemas = spec.components.get("schemas", {})
    project_fields = spec.resolve(schemas[PROJECT_SCHEMA]).get("properties", {})
    for i, organization in enumerate(document.get("organizations") or []):
        if not isinstance(organization, dict):
            continue  # parse_fixtures names the shape problem
        where = f"{source}: organizations[{i}]"
        for name, schema_name in ORGANIZATION_FIELDS.items():
            if name in organization:
                _check(
                    spec,
                    {"$ref": f"#/components/schemas/{schema_name}"},
                    organization[name],
                    f"{where}.{name}",
                )
        projects = organization.get("projects") or []
        for j, project in enumerate(projects if isinstance(projects, list) else []):
            if not isinstance(project, dict):
                continue
            for name, value in project.items():
                schema = project_fields.get(name)
                if schema is not None:
                    _check(spec, schema, value, f"{where}.projects[{j}].{name}")


def _check(spec: Any, schema: dict[str, Any], value: Any, where: str) -> None:
    found = problems(spec.validator(schema), value, limit=1)
    if found:
        first = found[0]
        # problems() prefixes a nested path (".key: ..." or "[0]: ..."); a top-level one is bare
        raise FixtureError(f"{where}{first}" if first[:1] in ".[" else f"{where}: {first}")
