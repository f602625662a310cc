"""What any one caller may cost the coordinator: the largest request it reads (derived from the run's largest
legal result, since a real update is a few hundred bytes), how many calls it serves at once, and per client how
many FetchTask long-polls it holds open and how often it builds a SyncLog reply (O(rounds) each)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from fedseed import rng_spec
from fedseed.codecs import CODECS
from fedseed.config import ConfigError
from fedseed.secagg.crypto import SECRET_BYTES
from fedseed.secagg.protocol import CIPHERTEXT_BYTES
from fedseed.server.config import ServerSection
from fedseed.server.rounds import Refusal
from fedseed.strategies.base import Strategy
from fedseed.v1 import coordinator_pb2 as pb

MAX_ID_BYTES = 4 * 128  # service.MAX_ID_CHARS characters of up to 4 UTF-8 bytes each
MAX_TEXT_BYTES = 256  # free text a legal client sends (JoinRequest.software, a spec version of its own)
HEADROOM_BYTES = 1024  # fields a later client version may add
ROUND_TO = 4096
RPCS_PER_CLIENT = 4  # two long-polls (one lingering after a reconnect), a heartbeat, a submission or SyncLog
SPARE_RPCS = 32  # health checks, Join, callers being refused
BUSY = grpc.StatusCode.RESOURCE_EXHAUSTED


def largest_requests(strategy: Strategy, secagg_clients: int = 0) -> dict[str, int]:
    """The serialized size of each method's largest legal request: every field at its widest (SecAgg: the share
    bundles of a round of `secagg_clients`, when the run aggregates securely)."""
    auth = pb.RequestAuth(client_id="x" * MAX_ID_BYTES, nonce=(1 << 64) - 1, timestamp_ms=-1,
                          run_id="x" * MAX_TEXT_BYTES, coordinator="x" * MAX_TEXT_BYTES)
    top = (1 << 32) - 1
    layout = pb.LayoutFingerprint(spec_version="x" * MAX_TEXT_BYTES, fingerprint="f" * 64)
    requests = {
        "SubmitUpdate": pb.UpdateRequest(auth=auth, round=top, payload=b"\xff" * strategy.max_payload_bytes(),
                                         num_samples=(1 << 64) - 1, start_checksum=b"\xff" * 16, train_loss=1.0,
                                         skipped_steps=top),
        "Join": pb.JoinRequest(auth=auth, layout=layout, codecs=CODECS, direction_kinds=rng_spec.KINDS,
                               software="x" * MAX_TEXT_BYTES),
        "FetchTask": pb.FetchTaskRequest(auth=auth, applied_round=top, wait_ms=top, state_checksum=b"\xff" * 16,
                                         held_round=top),
        "SyncLog": pb.SyncRequest(auth=auth, from_round=top, merged=True),
        "Heartbeat": pb.HeartbeatRequest(auth=auth),
    }
    if secagg_clients:
        shares = pb.ShareBundle(shares=[pb.EncryptedShare(peer=top, ciphertext=b"\xff" * CIPHERTEXT_BYTES)
                                        for _ in range(secagg_clients)])
        unmask = pb.UnmaskBundle(shares=[pb.SecretShare(owner=top, index=top, share=b"\xff" * SECRET_BYTES)
                                         for _ in range(secagg_clients)])
        requests["SecAgg"] = max(pb.SecAggRequest(auth=auth, round=top, attempt=top, wait_ms=top, shares=shares),
                                 pb.SecAggRequest(auth=auth, round=top, attempt=top, wait_ms=top, unmask=unmask),
                                 key=lambda m: m.ByteSize())
    return {method: msg.ByteSize() for method, msg in requests.items()}


def message_limit(sec: ServerSection, strategy: Strategy, secagg_clients: int = 0) -> int:
    """grpc.max_receive_message_length: server.max_message_bytes when set, else the largest legal request plus
    headroom, rounded up to 4 KiB. gRPC refuses a longer message (RESOURCE_EXHAUSTED) before it is parsed."""
    need = max(largest_requests(strategy, secagg_clients).values())
    if sec.max_message_bytes:
        if sec.max_message_bytes < need:
            raise ConfigError(f"config key 'server.max_message_bytes' ({sec.max_message_bytes}) is below this run's "
                              f"largest legal request ({need} bytes); leave it 0 to derive the limit")
        return sec.max_message_bytes
    return -(-(need + HEADROOM_BYTES) // ROUND_TO) * ROUND_TO


def concurrent_rpcs(sec: ServerSection, num_clients: int) -> int:
    return sec.max_concurrent_rpcs or RPCS_PER_CLIENT * num_clients + SPARE_RPCS


@dataclass
class TokenBucket:
    """Up to `burst` calls at once, refilled at `rate` per second."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ClientLimits:
    """Per-client caps, checked after the request's signature (so a caller cannot spend another's allowance)."""

    def __init__(self, sec: ServerSection) -> None:
        self.sec = sec
        self.sync: dict[str, TokenBucket] = {}

    def check_long_poll(self, cid: str, open_calls: int) -> None:
        if open_calls >= self.sec.max_long_polls:
            raise Refusal(BUSY, f"client {cid} already holds {open_calls} open FetchTask calls, the most "
                                f"server.max_long_polls allows; wait for one to return")

    def take_sync(self, cid: str) -> None:
        """Spend one of the client's SyncLog calls, or refuse (RESOURCE_EXHAUSTED) with nothing spent."""
        now = time.monotonic()
        per_s = self.sec.sync_per_minute / 60
        bucket = self.sync.setdefault(cid, TokenBucket(per_s, self.sec.sync_burst, self.sec.sync_burst, now))
        if not bucket.take(now):
            wait_s = (1 - bucket.tokens) / per_s
            raise Refusal(BUSY, f"client {cid} called SyncLog more than server.sync_burst = {self.sec.sync_burst} "
                                f"times at once or {self.sec.sync_per_minute:g} per minute; retry in {wait_s:.1f} s")
