"""Signed requests: a valid one passes once; forged, replayed, unknown, unsigned and stale ones are refused; the
signature covers the bytes as sent, so any encoder's valid bytes verify."""

import hashlib

import pytest

from fedseed import auth
from fedseed.auth import (
    AuthError,
    SignedRequest,
    Verifier,
    generate_key,
    load_private_key,
    public_hex,
    save_private_key,
    sign_request,
)
from fedseed.conformance.signing import fetch_task_with_defaults_written
from fedseed.v1 import coordinator_pb2 as pb

NOW = 1_800_000_000_000
RUN = ("run-a", "sha256:00aa")


def signed_update(key, nonce=1, ts=NOW, client="alice", round_=3, run=RUN) -> SignedRequest:
    req = pb.UpdateRequest(round=round_, payload=b"\x00" * 12, num_samples=10)
    return sign_request(req, "SubmitUpdate", client, key, nonce, ts, *run)


def verifier(**keys) -> Verifier:
    return Verifier({cid: public_hex(k) for cid, k in keys.items()}, run_id=RUN[0], coordinator=RUN[1])


def check(v: Verifier, signed: SignedRequest, method: str = "SubmitUpdate", cls=pb.UpdateRequest, **kw) -> str:
    return v.verify(cls.FromString(signed.body), signed.body, signed.signature, method, NOW, **kw)


def altered(signed: SignedRequest, change, cls=pb.UpdateRequest) -> SignedRequest:
    """The request changed after signing, its signature kept."""
    msg = cls.FromString(signed.body)
    change(msg)
    return SignedRequest(msg.SerializeToString(), signed.signature)


def test_sign_verify_and_refusals(tmp_path):
    alice, mallory = generate_key(), generate_key()
    save_private_key(alice, tmp_path / "alice.pem")
    assert public_hex(load_private_key(tmp_path / "alice.pem")) == public_hex(alice)
    assert (tmp_path / "alice.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8 PEM
    v = verifier(alice=alice)
    assert check(v, signed_update(alice)) == "alice"
    cases = {
        "replay": (signed_update(alice, nonce=1), "already used"),
        "forged key": (signed_update(mallory, nonce=2), "^unknown client or bad signature$"),
        "other method": (signed_update(alice, nonce=3), "^unknown client or bad signature$"),
        "stale clock": (signed_update(alice, nonce=4, ts=NOW - 10 * 60 * 1000), "timestamp"),
        "unknown client": (signed_update(mallory, nonce=5, client="mallory"), "^unknown client or bad signature$"),
        "unsigned": (SignedRequest(pb.UpdateRequest(round=3).SerializeToString(), b""), "not signed"),
        "no signature": (SignedRequest(signed_update(alice, nonce=6).body, b""), "not signed"),
        "short signature": (SignedRequest(signed_update(alice, nonce=7).body, b"\1" * 63), "must be 64 bytes"),
    }
    for name, (req, fragment) in cases.items():
        method = "Heartbeat" if name == "other method" else "SubmitUpdate"
        with pytest.raises(AuthError, match=fragment):
            check(v, req, method)
    tampered = altered(signed_update(alice, nonce=8), lambda m: setattr(m, "round", 4))
    with pytest.raises(AuthError, match="bad signature"):
        check(v, tampered)
    assert v.last_nonce["alice"] == 1  # refusals recorded nothing
    assert check(v, signed_update(alice, nonce=9)) == "alice"


def test_the_signature_covers_the_bytes_sent_not_a_re_serialization():
    """The digest is of the exact bytes: re-encoding the same message another way (a field written at its default)
    breaks the signature, and the signing bytes are the domain, the method and SHA-256 of the body."""
    alice = generate_key()
    signed = signed_update(alice)
    assert auth.signing_bytes("SubmitUpdate", signed.body) == (
        b"fedseed.v1\0SubmitUpdate\0" + hashlib.sha256(signed.body).digest())
    v = verifier(alice=alice)
    same_message = signed.body + bytes([0x38, 0x00])  # skipped_steps = 0 written explicitly: parses equal
    assert pb.UpdateRequest.FromString(same_message) == pb.UpdateRequest.FromString(signed.body)
    with pytest.raises(AuthError, match="^unknown client or bad signature$"):
        check(v, SignedRequest(same_message, signed.signature))
    assert check(v, signed) == "alice"


def test_hand_built_bytes_with_defaults_written_out_verify():
    """What another protobuf encoder may write: every optional field present at its default (held_round = 0,
    applied_round = 0, wait_ms = 0, an empty state_checksum and auth.signature), fields out of number order.
    Python never writes these bytes, and they verify."""
    alice = generate_key()
    body = fetch_task_with_defaults_written("alice", 41, NOW, *RUN)
    parsed = pb.FetchTaskRequest.FromString(body)
    assert parsed.auth.client_id == "alice" and parsed.held_round == 0 and parsed.auth.nonce == 41
    assert parsed.SerializeToString() != body  # a re-serialization would not be these bytes
    signature = alice.sign(auth.signing_bytes("FetchTask", body))
    v = verifier(alice=alice)
    assert v.verify(parsed, body, signature, "FetchTask", NOW) == "alice"


def test_a_signature_inside_the_request_is_refused_saying_where_it_belongs():
    alice = generate_key()
    old_form = altered(signed_update(alice), lambda m: setattr(m.auth, "signature", b"\1" * 64))
    with pytest.raises(AuthError, match="auth.signature must be empty.*'fedseed-signature-bin'"):
        check(verifier(alice=alice), old_form)


def test_unknown_id_and_bad_signature_look_alike(monkeypatch):
    """Neither the message nor the work done tells a forger whether an id is on the allow-list."""
    alice, mallory = generate_key(), generate_key()
    v = verifier(alice=alice)
    requests = [signed_update(mallory, client=client) for client in ("alice", "mallory")]
    hashed = []
    real = auth.signing_bytes
    monkeypatch.setattr(auth, "signing_bytes", lambda m, body: hashed.append(body) or real(m, body))
    errors = []
    for req in requests:
        with pytest.raises(AuthError) as e:
            check(v, req)
        errors.append(str(e.value))
    assert errors[0] == errors[1] == auth.UNKNOWN_OR_BAD
    assert hashed == [r.body for r in requests]  # the unknown id was verified too (against a stand-in key)
    assert v.last_nonce == {}


def test_stale_request_is_refused_before_any_hashing(monkeypatch):
    """A clock far off is refused before the body is hashed or a signature checked (a big forged request with a
    stale timestamp costs nothing), and a replayed nonce is only reported once the signature is good."""
    alice = generate_key()
    v = verifier(alice=alice)
    monkeypatch.setattr(auth, "signing_bytes", lambda *a: pytest.fail("stale request was hashed"))
    big = pb.UpdateRequest(round=3, payload=b"\0" * (3 << 20), auth=pb.RequestAuth(
        client_id="alice", nonce=9, timestamp_ms=NOW - 10 * 60 * 1000))
    with pytest.raises(AuthError, match="timestamp"):
        check(v, SignedRequest(big.SerializeToString(), b"\0" * 64))
    monkeypatch.undo()
    assert check(v, signed_update(alice, nonce=5)) == "alice"
    forged_replay = signed_update(generate_key(), nonce=1)
    with pytest.raises(AuthError, match="^unknown client or bad signature$"):  # not "replay": the id's in use
        check(v, forged_replay)


def test_requests_are_bound_to_one_run_of_one_coordinator():
    """run id and coordinator are signed: a request for another run (or coordinator) is refused before its
    signature is checked, one naming no run passes only as a hello, and neither can be altered after signing."""
    alice = generate_key()
    v = verifier(alice=alice)
    assert b"\x2a\x05run-a\x32\x0bsha256:00aa" in signed_update(alice, nonce=1).body  # auth fields 5 and 6
    for nonce, run in enumerate([("run-b", RUN[1]), (RUN[0], "sha256:ffff"), ("run-b", "")], start=2):
        with pytest.raises(AuthError, match=f"signed for run '{run[0]}' of coordinator '{run[1]}', not for this"):
            check(v, signed_update(alice, nonce=nonce, run=run))
    unbound = signed_update(alice, nonce=5, run=("", ""))
    with pytest.raises(AuthError, match="names no run: only a hello Join"):
        check(v, unbound)
    moved = altered(signed_update(alice, nonce=6, run=("run-b", RUN[1])), lambda m: setattr(m.auth, "run_id", RUN[0]))
    with pytest.raises(AuthError, match="^unknown client or bad signature$"):  # re-addressed after signing
        check(v, moved)
    assert v.last_nonce == {}  # every refusal recorded nothing
    hello = sign_request(pb.JoinRequest(), "Join", "alice", alice, 8, NOW)
    assert check(v, hello, "Join", pb.JoinRequest, hello=True) == "alice"
    assert check(v, signed_update(alice, nonce=9)) == "alice"
