"""Signed requests: every client holds an Ed25519 key; the coordinator keeps an allow-list of public keys and
refuses unknown clients, bad signatures, clocks too far off, and replayed or reordered nonces.

Signing bytes: b"fedseed.v1\\0" + method + b"\\0" + client_id + b"\\0" + nonce (8 bytes, big-endian)
+ timestamp_ms (8 bytes, big-endian, signed) + sha256(the request serialized deterministically with an
empty signature).
"""

from __future__ import annotations

import hashlib
import pathlib
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import Message
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from fedseed.private import create_private, read_private_key

DOMAIN = b"fedseed.v1\0"
MAX_SKEW_MS = 5 * 60 * 1000
UNKNOWN_OR_BAD = "unknown client or bad signature"


class AuthError(Exception):
    """A request that must be refused; the message says why."""


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def save_private_key(key: Ed25519PrivateKey, path: str | pathlib.Path) -> None:
    """Write the key to a new file created with mode 0600 (never an existing one)."""
    create_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def load_private_key(path: str | pathlib.Path) -> Ed25519PrivateKey:
    """The key in a PEM file that only its owner can access (ValueError otherwise, saying what to do)."""
    key = serialization.load_pem_private_key(read_private_key(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def public_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def signing_bytes(request: Message, method: str) -> bytes:
    """The bytes a request's signature covers (the request's own signature field excluded)."""
    auth = request.auth  # type: ignore[attr-defined]
    body = type(request)()
    body.CopyFrom(request)
    body.auth.signature = b""  # type: ignore[attr-defined]
    digest = hashlib.sha256(body.SerializeToString(deterministic=True)).digest()
    return (DOMAIN + method.encode() + b"\0" + auth.client_id.encode() + b"\0"
            + struct.pack(">Qq", auth.nonce, auth.timestamp_ms) + digest)


def sign_request(request: Message, method: str, client_id: str, key: Ed25519PrivateKey, nonce: int,
                 timestamp_ms: int) -> None:
    auth = request.auth  # type: ignore[attr-defined]
    auth.client_id, auth.nonce, auth.timestamp_ms = client_id, nonce, timestamp_ms
    auth.signature = key.sign(signing_bytes(request, method))


# verifies nothing anyone signed: it only makes refusing an unknown id cost what refusing a bad signature costs
_STAND_IN = VerifyKey(Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                            serialization.PublicFormat.Raw))


class Verifier:
    """Checks signed requests against an allow-list {client_id: public key hex}; tracks nonces."""

    def __init__(self, allow_list: dict[str, str], max_skew_ms: int = MAX_SKEW_MS) -> None:
        # libsodium verifies about twice as fast as OpenSSL here, and verification is the coordinator's hot path
        self.keys = {cid: VerifyKey(bytes.fromhex(h)) for cid, h in allow_list.items()}
        self.max_skew_ms = max_skew_ms
        self.last_nonce: dict[str, int] = {}

    def verify(self, request: Message, method: str, now_ms: int) -> str:
        """The verified client id; raises AuthError and records nothing when the request must be refused.

        The checks that cost nothing run first, so a stale request costs no hashing or verification. An unknown
        id and a bad signature get one message, and an unknown id is verified against a stand-in key, so
        neither the reply nor its timing tells which ids the allow-list holds."""
        if not request.HasField("auth"):
            raise AuthError("request is not signed")
        auth = request.auth  # type: ignore[attr-defined]
        if len(auth.signature) != 64:
            raise AuthError("signature must be 64 bytes")
        if abs(auth.timestamp_ms - now_ms) > self.max_skew_ms:
            raise AuthError(f"timestamp {auth.timestamp_ms} is more than {self.max_skew_ms} ms from server time")
        key = self.keys.get(auth.client_id)
        try:
            (key or _STAND_IN).verify(signing_bytes(request, method), auth.signature)
        except BadSignatureError:
            raise AuthError(UNKNOWN_OR_BAD) from None
        if key is None:
            raise AuthError(UNKNOWN_OR_BAD)
        # after the signature: an early "replay" would tell a forger which ids are in use
        if auth.nonce <= self.last_nonce.get(auth.client_id, 0):
            raise AuthError(f"nonce {auth.nonce} already used or out of order (replay)")
        self.last_nonce[auth.client_id] = auth.nonce
        return auth.client_id
