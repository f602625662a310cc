"""Signed requests: every client holds an Ed25519 key; the coordinator keeps an allow-list of public keys and
refuses unknown clients, bad signatures, clocks too far off, and replayed or reordered nonces.

Signing bytes: b"fedseed.v1\\0" + method + b"\\0" + client_id + b"\\0" + run_id + b"\\0" + coordinator + b"\\0"
+ nonce (8 bytes, big-endian) + timestamp_ms (8 bytes, big-endian, signed) + sha256(the request serialized
deterministically with an empty signature). run_id and coordinator bind a request to one run of one coordinator;
both are empty only in a hello (a Join that asks for the configuration and changes nothing).
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
    return (DOMAIN + b"\0".join(s.encode() for s in (method, auth.client_id, auth.run_id, auth.coordinator))
            + b"\0" + struct.pack(">Qq", auth.nonce, auth.timestamp_ms) + digest)


def sign_request(request: Message, method: str, client_id: str, key: Ed25519PrivateKey, nonce: int,
                 timestamp_ms: int, run_id: str = "", coordinator: str = "") -> None:
    """Sign for one run of one coordinator (run_id and coordinator from its RunConfig; empty: a hello)."""
    auth = request.auth  # type: ignore[attr-defined]
    auth.client_id, auth.nonce, auth.timestamp_ms = client_id, nonce, timestamp_ms
    auth.run_id, auth.coordinator = run_id, coordinator
    auth.signature = key.sign(signing_bytes(request, method))


# verifies nothing anyone signed: it only makes refusing an unknown id cost what refusing a bad signature costs
_STAND_IN = VerifyKey(Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.Raw,
                                                                            serialization.PublicFormat.Raw))


class Verifier:
    """Checks signed requests against an allow-list {client_id: public key hex}; tracks nonces."""

    def __init__(self, allow_list: dict[str, str], max_skew_ms: int = MAX_SKEW_MS, run_id: str = "",
                 coordinator: str = "") -> None:
        self.set_keys(allow_list)
        self.max_skew_ms = max_skew_ms
        self.run_id, self.coordinator = run_id, coordinator
        self.last_nonce: dict[str, int] = {}

    def set_keys(self, allow_list: dict[str, str]) -> None:
        # libsodium verifies about twice as fast as OpenSSL here, and verification is the coordinator's hot path
        self.keys = {cid: VerifyKey(bytes.fromhex(h)) for cid, h in allow_list.items()}

    def _check_run(self, run_id: str, coordinator: str, hello: bool) -> None:
        if hello and not run_id and not coordinator:
            return
        if not run_id:
            raise AuthError("request names no run: only a hello Join (empty layout) may; send one to learn the "
                            "run id and coordinator to sign for")
        if (run_id, coordinator) != (self.run_id, self.coordinator):  # what was sent is shown, never ours
            raise AuthError(f"request is signed for run {run_id[:64]!r} of coordinator {coordinator[:96]!r}, not "
                            "for this coordinator's run: it was captured elsewhere, or the client is from another "
                            "run and must join this one afresh")

    def verify(self, request: Message, method: str, now_ms: int, hello: bool = False) -> str:
        """The verified client id; raises AuthError and records nothing when the request must be refused.

        hello: the request is a Join asking only for the configuration, the one request that may name no run.
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
        self._check_run(auth.run_id, auth.coordinator, hello)
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
