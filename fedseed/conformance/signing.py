"""Vectors of request signing (docs/protocol.md, Signing): a fixed Ed25519 key, the request bytes as sent, the
signing bytes and the signature; one request encoded as another protobuf library may write it."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedseed import auth
from fedseed.v1 import coordinator_pb2 as pb

KEY_SEED = bytes(range(1, 33))  # the 32-byte Ed25519 private key (RFC 8032 "seed")
RUN_ID, COORDINATOR = "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "sha256:" + "ab" * 32
TIMESTAMP_MS = 1_800_000_000_000


def _entry(method: str, body: bytes, key: Ed25519PrivateKey) -> dict:
    signing = auth.signing_bytes(method, body)
    return {"inputs": {"method": method, "body": body.hex()},
            "expected": {"signing_bytes": signing.hex(), "signature": key.sign(signing).hex()}}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    """One protobuf field: a varint (wire type 0) or length-delimited bytes (wire type 2)."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def fetch_task_with_defaults_written(client_id: str, nonce: int, timestamp_ms: int, run_id: str,
                                     coordinator: str) -> bytes:
    """A FetchTaskRequest as another protobuf encoder may write it, and Python's never does: every optional field
    present at its default (applied_round, wait_ms, held_round 0; empty state_checksum and auth.signature),
    fields out of number order."""
    auth_bytes = (field(3, timestamp_ms) + field(1, client_id.encode()) + field(2, nonce) + field(4, b"")
                  + field(6, coordinator.encode()) + field(5, run_id.encode()))
    return field(5, 0) + field(2, 0) + field(1, auth_bytes) + field(3, 0) + field(4, b"")


def vectors() -> dict:
    key = Ed25519PrivateKey.from_private_bytes(KEY_SEED)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    update = pb.UpdateRequest(round=3, payload=bytes.fromhex("0000803f000000bf"), num_samples=12,
                              start_checksum=bytes(range(16)), train_loss=0.5)
    signed = auth.sign_request(update, "SubmitUpdate", "client-7", key, 11, TIMESTAMP_MS, RUN_ID, COORDINATOR)
    hello = auth.sign_request(pb.JoinRequest(codecs=["fp32"], direction_kinds=["rademacher"]), "Join", "client-7",
                              key, 10, TIMESTAMP_MS)
    return {
        "domain": auth.DOMAIN.hex(),
        "metadata_key": auth.SIGNATURE_METADATA,
        "key": {"private_seed": KEY_SEED.hex(), "public_key": auth.public_hex(key), "pkcs8_pem": pem},
        "hello_join": _entry("Join", hello.body, key),
        "submit_update": _entry("SubmitUpdate", signed.body, key),
        "fetch_task_defaults_written": _entry("FetchTask", fetch_task_with_defaults_written(
            "client-7", 12, TIMESTAMP_MS, RUN_ID, COORDINATOR), key),
    }
