"""JSON Schema of the canonical models, generated into ``schemas/`` (committed; a test fails when it drifts).

Run ``python -m rdstd.schema.jsonschema schemas`` (or ``make schemas``) after changing a model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from rdstd.schema.episode import EpisodeMeta
from rdstd.schema.manifest import Manifest
from rdstd.schema.spec import ConverterSpec

#: File name in ``schemas/`` -> model.
SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "manifest.schema.json": Manifest,
    "episode-meta.schema.json": EpisodeMeta,
    "converter-spec.schema.json": ConverterSpec,
}


def render(model: type[BaseModel]) -> str:
    """The JSON Schema of ``model`` as stable, pretty JSON text."""
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in SCHEMA_FILES.items():
        path = directory / name
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(p)
