"""Signed requests: a valid one passes once; forged, replayed, unknown, unsigned and stale ones are refused."""

import pytest

from fedseed import auth
from fedseed.auth import AuthError, Verifier, generate_key, load_private_key, public_hex, save_private_key, sign_request
from fedseed.v1 import coordinator_pb2 as pb

NOW = 1_800_000_000_000
RUN = ("run-a", "sha256:00aa")


def signed_update(key, nonce=1, ts=NOW, client="alice", round_=3, run=RUN):
    req = pb.UpdateRequest(round=round_, payload=b"\x00" * 12, num_samples=10)
    sign_request(req, "SubmitUpdate", client, key, nonce, ts, *run)
    return req


def verifier(**keys) -> Verifier:
    return Verifier({cid: public_hex(k) for cid, k in keys.items()}, run_id=RUN[0], coordinator=RUN[1])


def test_sign_verify_and_refusals(tmp_path):
    alice, mallory = generate_key(), generate_key()
    save_private_key(alice, tmp_path / "alice.pem")
    assert public_hex(load_private_key(tmp_path / "alice.pem")) == public_hex(alice)
    v = verifier(alice=alice)
    assert v.verify(signed_update(alice), "SubmitUpdate", NOW) == "alice"
    cases = {
        "replay": (signed_update(alice, nonce=1), "already used"),
        "forged key": (signed_update(mallory, nonce=2), "^unknown client or bad signature$"),
        "other method": (signed_update(alice, nonce=3), "^unknown client or bad signature$"),
        "stale clock": (signed_update(alice, nonce=4, ts=NOW - 10 * 60 * 1000), "timestamp"),
        "unknown client": (signed_update(mallory, nonce=5, client="mallory"), "^unknown client or bad signature$"),
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
    assert v.verify(signed_update(alice, nonce=9), "SubmitUpdate", NOW) == "alice"


def test_unknown_id_and_bad_signature_look_alike(monkeypatch):
    """Neither the message nor the work done tells a forger whether an id is on the allow-list."""
    alice, mallory = generate_key(), generate_key()
    v = verifier(alice=alice)
    requests = [signed_update(mallory, client=client) for client in ("alice", "mallory")]
    hashed = []
    real = auth.signing_bytes
    monkeypatch.setattr(auth, "signing_bytes", lambda req, m: hashed.append(req.auth.client_id) or real(req, m))
    errors = []
    for req in requests:
        with pytest.raises(AuthError) as e:
            v.verify(req, "SubmitUpdate", NOW)
        errors.append(str(e.value))
    assert errors[0] == errors[1] == auth.UNKNOWN_OR_BAD
    assert hashed == ["alice", "mallory"]  # the unknown id was verified too (against a stand-in key)
    assert v.last_nonce == {}


def test_stale_request_is_refused_before_any_hashing(monkeypatch):
    """A clock far off is refused before the body is hashed or a signature checked (a big forged request with a
    stale timestamp costs nothing), and a replayed nonce is only reported once the signature is good."""
    alice = generate_key()
    v = verifier(alice=alice)
    monkeypatch.setattr(auth, "signing_bytes", lambda *a: pytest.fail("stale request was hashed"))
    big = pb.UpdateRequest(round=3, payload=b"\0" * (3 << 20), auth=pb.RequestAuth(
        client_id="alice", nonce=9, timestamp_ms=NOW - 10 * 60 * 1000, signature=b"\0" * 64))
    with pytest.raises(AuthError, match="timestamp"):
        v.verify(big, "SubmitUpdate", NOW)
    monkeypatch.undo()
    assert v.verify(signed_update(alice, nonce=5), "SubmitUpdate", NOW) == "alice"
    forged_replay = signed_update(generate_key(), nonce=1)
    with pytest.raises(AuthError, match="^unknown client or bad signature$"):  # not "replay": the id's in use
        v.verify(forged_replay, "SubmitUpdate", NOW)


def test_requests_are_bound_to_one_run_of_one_coordinator():
    """run id and coordinator are signed: a request for another run (or coordinator) is refused before its
    signature is checked, one naming no run passes only as a hello, and neither can be altered after signing."""
    alice = generate_key()
    v = verifier(alice=alice)
    plain = signed_update(alice, nonce=1)
    assert b"\0run-a\0sha256:00aa\0" in auth.signing_bytes(plain, "SubmitUpdate")
    for nonce, run in enumerate([("run-b", RUN[1]), (RUN[0], "sha256:ffff"), ("run-b", "")], start=2):
        with pytest.raises(AuthError, match=f"signed for run '{run[0]}' of coordinator '{run[1]}', not for this"):
            v.verify(signed_update(alice, nonce=nonce, run=run), "SubmitUpdate", NOW)
    unbound = signed_update(alice, nonce=5, run=("", ""))
    with pytest.raises(AuthError, match="names no run: only a hello Join"):
        v.verify(unbound, "SubmitUpdate", NOW)
    moved = signed_update(alice, nonce=6, run=("run-b", RUN[1]))
    moved.auth.run_id = RUN[0]  # re-addressed to this run after signing
    with pytest.raises(AuthError, match="^unknown client or bad signature$"):
        v.verify(moved, "SubmitUpdate", NOW)
    assert v.last_nonce == {}  # every refusal recorded nothing
    hello = pb.JoinRequest()
    sign_request(hello, "Join", "alice", alice, 8, NOW)
    assert v.verify(hello, "Join", NOW, hello=True) == "alice"
    assert v.verify(signed_update(alice, nonce=9), "SubmitUpdate", NOW) == "alice"
