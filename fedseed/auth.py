"""Signed requests: every client holds an Ed25519 key; the coordinator keeps an allow-list of public keys and
refuses unknown clients, bad signatures, clocks too far off, and replayed or reordered nonces.

A signature covers the request bytes exactly as they travel, so nothing is ever re-serialized and any
protobuf encoder's output verifies: signing bytes = b"fedseed.v1\\0" + method + b"\\0" + sha256(request bytes).
The request's RequestAuth (client_id, nonce, timestamp_ms, run_id, coordinator) is inside those bytes; the
64-byte signature travels beside them, in the call metadata ``fedseed-signature-bin``. run_id and coordinator
bind a request to one run of one coordinator; both are empty only in a hello (a Join that asks for the
configuration and changes nothing).
"""

from __future__ import annotations

import hashlib
import pathlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from google.protobuf.message import Message
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from fedseed.private import create_private, read_private_key

DOMAIN = b"fedseed.v1\0"
SIGNATURE_METADATA = "fedseed-signature-bin"
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


def signing_bytes(method: str, body: bytes) -> bytes:
    """The bytes a request's signature covers: the method and a digest of the request bytes as sent."""
    return DOMAIN + method.encode() + b"\0" + hashlib.sha256(body).digest()


@dataclass(frozen=True)
class SignedRequest:
    """A request's bytes as they travel and the signature that goes with them in the call metadata."""

    body: bytes
    signature: bytes

    @property
    def metadata(self) -> tuple[tuple[str, bytes]]:
        return ((SIGNATURE_METADATA, self.signature),)


def sign_request(request: Message, method: str, client_id: str, key: Ed25519PrivateKey, nonce: int,
                 timestamp_ms: int, run_id: str = "", coordinator: str = "") -> SignedRequest:
    """Fill the request's auth for one run of one coordinator (run_id and coordinator from its RunConfig;
    empty: a hello), serialize it once and sign those bytes."""
    auth = request.auth  # type: ignore[attr-defined]
    auth.client_id, auth.nonce, auth.timestamp_ms = client_id, nonce, timestamp_ms
    auth.run_id, auth.coordinator = run_id, coordinator
    auth.ClearField("signature")  # the field of an older form, which must travel empty
    body = request.SerializeToString()
    return SignedRequest(body, key.sign(signing_bytes(method, body)))


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

    def verify(self, request: Message, body: bytes, signature: bytes, method: str, now_ms: int,
               hello: bool = False) -> str:
        """The verified client id; raises AuthError and records nothing when the request must be refused.

        request is parsed from body, the bytes as received; signature came beside them in the call metadata.

        hello: the request is a Join asking only for the configuration, the one request that may name no run.
        The checks that cost nothing run first, so a stale request costs no hashing or verification. An unknown
        id and a bad signature get one message, and an unknown id is verified against a stand-in key, so
        neither the reply nor its timing tells which ids the allow-list holds."""
        auth = request.auth  # type: ignore[attr-defined]
        if auth.signature:
            raise AuthError(f"auth.signature must be empty: the signature travels in the call metadata "
                            f"{SIGNATURE_METADATA!r}, over the request bytes as sent (docs/protocol.md, Signing)")
        if not request.HasField("auth") or not signature:
            raise AuthError(f"request is not signed: it needs a RequestAuth and a {SIGNATURE_METADATA!r} "
                            "metadata entry")
        if len(signature) != 64:
            raise AuthError(f"signature ({SIGNATURE_METADATA!r}) must be 64 bytes, not {len(signature)}")
        if abs(auth.timestamp_ms - now_ms) > self.max_skew_ms:
            raise AuthError(f"timestamp {auth.timestamp_ms} is more than {self.max_skew_ms} ms from server time")
        self._check_run(auth.run_id, auth.coordinator, hello)
        key = self.keys.get(auth.client_id)
        try:
            (key or _STAND_IN).verify(signing_bytes(method, body), signature)
        except BadSignatureError:
            raise AuthError(UNKNOWN_OR_BAD) from None
        if key is None:
            raise AuthError(UNKNOWN_OR_BAD)
        # after the signature: an early "replay" would tell a forger which ids are in use
        if auth.nonce <= self.last_nonce.get(auth.client_id, 0):
            raise AuthError(f"nonce {auth.nonce} already used or out of order (replay)")
        self.last_nonce[auth.client_id] = auth.nonce
        return auth.client_id
