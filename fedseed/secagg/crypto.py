"""The cryptography of secure aggregation, all from maintained libraries: X25519 key agreement, HKDF-SHA256 key
derivation, ChaCha20 keystreams as masks, ChaCha20-Poly1305 for shares in transit (``cryptography``), and Shamir
secret sharing over GF(2^128) (``pycryptodome``). Every derived key is bound to its purpose, the run, the round
and the parties, so no key serves twice."""

from __future__ import annotations

import os
import struct

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedseed.secagg.field import MODULUS

LABEL = b"fedseed-secagg-v1"
SECRET_BYTES = 16  # self-mask seeds and mask-key seeds: what Shamir shares (one GF(2^128) element)
KEY_BYTES = 32
NONCE = bytes(12)  # each share key encrypts exactly one message, so a fixed nonce never repeats under a key
_PROBE = X25519PrivateKey.generate()  # only to test that a public key is a usable point


class SecAggError(ValueError):
    """A secure-aggregation message or key that cannot be used; the round goes on without it."""


class ShareError(SecAggError):
    """A share that does not decrypt or does not belong where it claims."""


def derive(secret: bytes, purpose: bytes, context: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=LABEL + b"/" + purpose + b"/" + context).derive(secret)


def fresh_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def mask_private_key(seed: bytes) -> X25519PrivateKey:
    """The masking key pair is derived from a 16-byte seed, so the seed is what gets secret-shared."""
    return X25519PrivateKey.from_private_bytes(derive(seed, b"mask-key", b""))


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_public(raw: bytes, what: str) -> None:
    """Refuse a key of the wrong length, or a low-order point (it would give every peer the all-zero secret)."""
    if len(raw) != KEY_BYTES:
        raise SecAggError(f"{what} must be a {KEY_BYTES}-byte X25519 public key, got {len(raw)} bytes")
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        raise SecAggError(f"{what} is a low-order X25519 point, which no key agreement may use") from None


def agree(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    if len(peer_public) != KEY_BYTES:
        raise SecAggError(f"a peer's key must be {KEY_BYTES} bytes, got {len(peer_public)}")
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as e:  # a low-order point gives the all-zero secret, which cryptography refuses
        raise SecAggError(f"a peer's X25519 key is unusable: {e}") from None


def keystream(key: bytes, length: int) -> np.ndarray:
    """`length` uniform elements of Z/2^32 from ChaCha20 under `key` (uint64 holding values below 2^32)."""
    enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    words = np.frombuffer(enc.update(bytes(4 * length)), dtype="<u4").astype(np.uint64)
    return words % np.uint64(MODULUS)


def round_context(run_id: str, round_idx: int, attempt: int) -> bytes:
    return run_id.encode() + struct.pack("<II", round_idx, attempt)


def pair_context(context: bytes, a: int, b: int) -> bytes:
    return context + struct.pack("<II", min(a, b), max(a, b))


def share_key(cipher_private: X25519PrivateKey, peer_public: bytes, context: bytes, sender: int,
              receiver: int) -> bytes:
    return derive(agree(cipher_private, peer_public), b"share", context + struct.pack("<II", sender, receiver))


def seal_share(key: bytes, sender: int, receiver: int, index: int, self_share: bytes, key_share: bytes,
               aad: bytes) -> bytes:
    plain = struct.pack("<III", sender, receiver, index) + self_share + key_share
    return ChaCha20Poly1305(key).encrypt(NONCE, plain, aad)


def open_share(key: bytes, ciphertext: bytes, sender: int, receiver: int, aad: bytes) -> tuple[int, bytes, bytes]:
    """(share index, share of the sender's self-mask seed, share of its mask-key seed)."""
    try:
        plain = ChaCha20Poly1305(key).decrypt(NONCE, ciphertext, aad)
    except InvalidTag:
        raise ShareError(f"the share from client {sender} does not decrypt") from None
    if len(plain) != 12 + 2 * SECRET_BYTES:
        raise ShareError(f"the share from client {sender} has {len(plain)} bytes")
    s, r, index = struct.unpack("<III", plain[:12])
    if (s, r) != (sender, receiver):
        raise ShareError(f"the share from client {sender} names sender {s} and receiver {r}")
    return index, plain[12:12 + SECRET_BYTES], plain[12 + SECRET_BYTES:]


def split(secret: bytes, threshold: int, holders: int) -> list[tuple[int, bytes]]:
    """Shamir shares (index 1..holders, 16 bytes each) of which any `threshold` rebuild the secret."""
    return Shamir.split(threshold, holders, secret)


def combine(shares: list[tuple[int, bytes]], threshold: int) -> bytes:
    unique = sorted(dict(shares).items())
    if len(unique) < threshold:
        raise ValueError(f"{len(unique)} distinct shares, {threshold} needed")
    return Shamir.combine(unique[:threshold])
