"""JSON Schema of the YAML language, for editors (yaml-language-server) and tools."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from govern.spec.models import Institution, Manifest

SCHEMA_ID = "https://govern.invalid/schemas/govern.schema.json"


def spec_json_schema() -> dict[str, Any]:
    """One schema accepting an institution, a manifest or an experiment file."""
    from govern.experiments.spec import Experiment

    _, top = models_json_schema(
        [(Institution, "validation"), (Manifest, "validation"), (Experiment, "validation")],
        ref_template="#/$defs/{model}",
    )
    defs = top["$defs"]
    # In YAML these accept shorthands the loader expands before validation.
    defs["Manifest"]["properties"]["institution"] = {
        "anyOf": [
            {"type": "string", "description": "relative path to an institution file"},
            {"$ref": "#/$defs/Institution"},
        ]
    }
    # A manifest that extends a base may leave the institution to the base.
    manifest = defs["Manifest"]
    manifest["required"] = [key for key in manifest["required"] if key != "institution"]
    manifest["anyOf"] = [{"required": ["institution"]}, {"required": ["extends"]}]
    for name, model in defs.items():
        routes = model.get("properties", {}).get("next")
        if name.endswith("Stage") and routes:
            routes["additionalProperties"] = {
                "anyOf": [
                    {"type": "string", "description": "next stage id"},
                    {"$ref": "#/$defs/Route"},
                ]
            }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "govern institution, manifest or experiment",
        "anyOf": [
            {"$ref": "#/$defs/Institution"},
            {"$ref": "#/$defs/Manifest"},
            {"$ref": "#/$defs/Experiment"},
        ],
        "$defs": defs,
    }
