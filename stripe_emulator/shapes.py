"""PROVISIONAL: blank objects straight from the fixtures; to be replaced by curated templates."""
from __future__ import annotations
import copy, json, pathlib
from typing import Any
_F = json.loads((pathlib.Path(__file__).resolve().parents[2] / "shared/stripe/fixtures3.json").read_text())["resources"]

def blank(name: str) -> dict[str, Any]:
    return copy.deepcopy(_F[name])
