"""The conformance vectors (docs/spec/conformance.json) are what the reference implementation computes now, and a
change to any constant of the reference shows in them."""

import json
import pathlib
import subprocess
import sys

import pytest

from fedseed import auth, compact, directions, rng_spec, state
from fedseed.conformance import SECTIONS, build, render
from fedseed.secagg import crypto
from fedseed.strategies import fedkseed, fedkseed_pro

PATH = pathlib.Path(__file__).resolve().parents[1] / "docs" / "spec" / "conformance.json"  # as installed or not


def committed() -> dict:
    return json.loads(PATH.read_text())


def test_the_vector_file_is_what_the_reference_computes():
    fresh = build()
    stale = [name for name in SECTIONS if committed().get(name) != fresh[name]]
    assert not stale, f"vectors of {stale} moved: regenerate with python -m fedseed.conformance"
    assert PATH.read_text() == render(fresh)  # the file is exactly the generator's text, keys sorted


def test_the_check_command_agrees_and_says_so(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "fedseed.conformance", "--check", "--out", str(PATH)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "matches" in ok.stdout
    moved = tmp_path / "moved.json"
    moved.write_text(PATH.read_text().replace('"mix32"', '"mix_32"'))
    bad = subprocess.run([sys.executable, "-m", "fedseed.conformance", "--check", "--out", str(moved)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "differs" in bad.stderr


MUTATIONS = [  # (module, constant, another value, the section whose vectors must move)
    (rng_spec, "MIX_MUL_1", rng_spec.MIX_MUL_1 + 2, "randomness"),
    (rng_spec, "MIX_MUL_2", rng_spec.MIX_MUL_2 ^ 0x100, "randomness"),
    (rng_spec, "GAUSS_SCALE", 255, "randomness"),
    (auth, "DOMAIN", b"fedseed.v2\0", "signing"),
    (directions, "DELTA_UNIT", 2.0**-55, "state"),
    (compact, "HEADROOM_BITS", 28, "state"),
    (state, "DELTA_BOUND_LIMIT", 2**61, "state"),
    (fedkseed, "SHARED", 0xFFFF_FFFE, "aggregation"),
    (fedkseed_pro, "WEIGHT_SCALE", 1 << 20, "aggregation"),
    (crypto, "LABEL", b"fedseed-secagg-v2", "private"),
]


@pytest.mark.parametrize("module, name, value, section", MUTATIONS, ids=[f"{m[0].__name__}.{m[1]}" for m in MUTATIONS])
def test_changing_a_constant_of_the_reference_moves_the_vectors(monkeypatch, module, name, value, section):
    from importlib import import_module

    rng_spec.gauss_table.cache_clear()
    monkeypatch.setattr(module, name, value)
    try:
        assert import_module(f"fedseed.conformance.{section}").vectors() != committed()[section]
    finally:
        monkeypatch.undo()
        rng_spec.gauss_table.cache_clear()
