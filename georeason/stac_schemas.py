"""Offline JSON-schema validation of the STAC catalog, against schemas shipped with the package.

``data_catalog/schemas/`` holds the STAC 1.1.0 core schemas and the GeoJSON schemas (the
copies pystac ships in ``pystac/validation/jsonschemas``) and the schemas of the extensions
the catalog uses (``extensions/<name>/<version>/schema.json``: projection v2.0.0, eo v2.0.0
and v1.1.0, raster v2.0.0 and v1.1.0, file v2.1.0, from the stac-extensions repositories at
those tags; Apache-2.0).
Every ``$ref`` resolves inside that folder (a ``referencing`` registry keyed by the
schemas' canonical URLs), so validation never touches the network. An extension the
catalog declares but whose schema is not shipped is reported as a problem, not skipped.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_DIR", "schema_problems", "shipped_extensions"]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data_catalog" / "schemas"
_CORE = "https://schemas.stacspec.org/v{version}/{spec}-spec/json-schema/{name}.json"
_EXT_PREFIX = "https://stac-extensions.github.io/"


def _schema_dir() -> Path:
    try:  # installed: the data_catalog package's folder
        from importlib.resources import files

        d = Path(str(files("georeason.data_catalog") / "schemas"))
        if d.is_dir():
            return d
    except (ModuleNotFoundError, TypeError):
        pass
    return SCHEMA_DIR


@cache
def _registry():
    from referencing import Registry, Resource

    root = _schema_dir()
    resources: list[tuple[str, Any]] = []
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        res = Resource.from_contents(doc)
        rel = path.relative_to(root).as_posix()
        uris = set()
        if doc.get("$id"):
            uris.add(doc["$id"].rstrip("#"))
        if rel.startswith("stac-spec/"):
            _, version, name = rel.split("/")
            spec = (
                "catalog" if name == "catalog.json" else "collection" if name == "collection.json" else "item"
            )
            uris.add(f"https://schemas.stacspec.org/{version}/{spec}-spec/json-schema/{name}")
        elif rel.startswith("geojson/"):
            uris.add(f"https://geojson.org/schema/{path.name}")
        elif rel.startswith("extensions/"):
            _, name, version, _file = rel.split("/")
            uris.add(f"{_EXT_PREFIX}{name}/{version}/schema.json")
        resources += [(u, res) for u in uris]
    return Registry().with_resources(resources)


def shipped_extensions() -> list[str]:
    """Schema URLs of the extensions whose schemas are shipped."""
    root = _schema_dir() / "extensions"
    return sorted(
        f"{_EXT_PREFIX}{p.parent.parent.name}/{p.parent.name}/schema.json"
        for p in root.glob("*/*/schema.json")
    )


def _core_url(doc: dict[str, Any]) -> str | None:
    version = doc.get("stac_version")
    kind = doc.get("type")
    name = {
        "Feature": ("item", "item"),
        "Catalog": ("catalog", "catalog"),
        "Collection": ("collection", "collection"),
    }
    if not version or kind not in name:
        return None
    spec, file = name[kind]
    return f"https://schemas.stacspec.org/v{version}/{spec}-spec/json-schema/{file}.json"


def _leaf(err):
    """The most specific error under a ``oneOf``/``anyOf`` failure (the one a person can fix):
    the deepest in the document, recursively (the branch for the wrong object type fails
    at the root, the right branch deeper)."""
    while err.context:
        err = max(err.context, key=lambda e: len(e.absolute_path))
    return err


def schema_problems(doc: dict[str, Any], where: str) -> list[str]:
    """Problems of one STAC object (item, catalog, collection) against its core schema and
    the schemas of every extension it declares; an empty list when it validates."""
    from jsonschema import Draft7Validator
    from jsonschema.validators import validator_for
    from referencing.exceptions import Unresolvable

    registry = _registry()
    problems: list[str] = []
    urls = []
    core = _core_url(doc)
    if core is None:
        return [f"{where}: not a STAC object (needs 'type' Feature/Catalog/Collection and 'stac_version')"]
    urls.append(core)
    urls += [u for u in doc.get("stac_extensions") or []]
    for url in urls:
        try:
            schema = registry.contents(url.rstrip("#"))
        except (Unresolvable, LookupError):
            problems.append(
                f"{where}: no shipped schema for {url}; use an extension version georeason ships "
                f"({', '.join(shipped_extensions())})"
            )
            continue
        cls = validator_for(schema, default=Draft7Validator)
        validator = cls(schema, registry=registry)
        try:
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:
            problems.append(f"{where}: schema {url} refers to {exc} which is not shipped")
            continue
        label = "STAC core" if url == core else url.removeprefix(_EXT_PREFIX).rsplit("/", 1)[0]
        for err in errors[:10]:
            leaf = _leaf(err)
            path = "/".join(str(p) for p in leaf.absolute_path) or "(root)"
            problems.append(f"{where}: {label}: {path}: {leaf.message[:200]}")
    return problems
