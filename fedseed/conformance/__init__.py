"""Conformance vectors: inputs and expected outputs of every computation a party performs to agree on the state,
generated from the reference implementation into one language-neutral JSON file (docs/spec/conformance.json).

    python -m fedseed.conformance           # rewrite the file
    python -m fedseed.conformance --check   # exit 1 if the file differs from what the code computes

Each section module has ``vectors() -> dict``; docs/spec/ defines each computation and names its vector.
Bytes are hex; float32 values are their IEEE bits as hex; integers that may pass 2**53 are decimal strings.
"""

from __future__ import annotations

import json
import pathlib
from importlib import import_module

FORMAT = "fedseed-conformance-v1"
SECTIONS = ("randomness", "signing", "state", "aggregation", "private")
PATH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "spec" / "conformance.json"


def build() -> dict:
    """Every section's vectors, computed now by the reference implementation."""
    from fedseed import rng_spec

    doc: dict = {"format": FORMAT, "spec_version": rng_spec.SPEC_VERSION}
    for name in SECTIONS:
        doc[name] = import_module(f"fedseed.conformance.{name}").vectors()
    return doc


def render(doc: dict) -> str:
    """The file's text: sorted keys, one indentation, so a diff shows which vector changed."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"
