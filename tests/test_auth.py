"""Signed requests: a valid one passes once; forged, replayed, unknown, unsigned and stale ones are refused."""

import pytest

from fedseed.auth import AuthError, Verifier, generate_key, load_private_key, public_hex, save_private_key, sign_request
from fedseed.v1 import coordinator_pb2 as pb

NOW = 1_800_000_000_000


def signed_update(key, nonce=1, ts=NOW, client="alice", round_=3):
    req = pb.UpdateRequest(round=round_, payload=b"\x00" * 12, num_samples=10)
    sign_request(req, "SubmitUpdate", client, key, nonce, ts)
    return req


def test_sign_verify_and_refusals(tmp_path):
    alice, mallory = generate_key(), generate_key()
    save_private_key(alice, tmp_path / "alice.pem")
    assert public_hex(load_private_key(tmp_path / "alice.pem")) == public_hex(alice)
    v = Verifier({"alice": public_hex(alice)})
    assert v.verify(signed_update(alice), "SubmitUpdate", NOW) == "alice"
    cases = {
        "replay": (signed_update(alice, nonce=1), "already used"),
        "forged key": (signed_update(mallory, nonce=2), "bad signature"),
        "other method": (signed_update(alice, nonce=3), "bad signature"),
        "stale clock": (signed_update(alice, nonce=4, ts=NOW - 10 * 60 * 1000), "timestamp"),
        "unknown client": (signed_update(mallory, nonce=5, client="mallory"), "unknown client"),
        "unsigned": (pb.UpdateRequest(round=3), "not signed"),
    }
    for name, (req, fragment) in cases.items():
        method = "Heartbeat" if name == "other method" else "SubmitUpdate"
        with pytest.raises(AuthError, match=fragment):
            v.verify(req, method, NOW)
    tampered = signed_update(alice, nonce=6)
    tampered.round = 4
    with pytest.raises(AuthError, match="bad signature"):
        v.verify(tampered, "SubmitUpdate", NOW)
    assert v.last_nonce["alice"] == 1  # refusals recorded nothing
    assert v.verify(signed_update(alice, nonce=7), "SubmitUpdate", NOW) == "alice"
