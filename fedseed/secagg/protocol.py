"""Both sides of one round's secure aggregation, driven by the protocol's messages (``fedseed.v1``), so the
simulation runs it in one process and the coordinator over gRPC with the same code and the same bytes.

    client                                  coordinator
    keys()                 -- SecAggKeys -->  add_keys        close_keys   -> roster  (R1: advertised)
    shares(roster)         -- ShareBundle ->  add_shares      close_shares -> inbox   (R2: shared)
    receive(inbox); mask() -- payload ----->  add_masked      close_masked -> survivors (R3: submitted)
    unmask(survivors)      -- UnmaskBundle->  add_unmask      total()      -> the sum over R3

Client i masks its field vector x_i as y_i = x_i + PRG(b_i) + sum_j +-PRG(s_ij) over its neighbours j in R2
(+ when i < j), where s_ij is agreed by X25519 and b_i is a fresh self-mask seed. Both b_i and the seed of its
masking key are Shamir-shared among i and its neighbours (a majority rebuilds them). For every client in R3 the
coordinator rebuilds b_i; for every client that shared but never submitted, its masking key, from which it
removes the masks its neighbours added for it. It never asks for both secrets of one client, and an honest
client refuses a request that would unmask a sum over fewer than ``min_clients`` clients.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fedseed.secagg import crypto
from fedseed.secagg import field as fld
from fedseed.secagg.graph import connected, majority, neighbours
from fedseed.v1 import coordinator_pb2 as pb

CIPHERTEXT_BYTES = 12 + 2 * crypto.SECRET_BYTES + 16


class ProtocolError(crypto.SecAggError):
    """A secure-aggregation message that does not fit the round's protocol; nothing was changed."""


@dataclass(frozen=True)
class SecAggParams:
    """What every party of a private round knows in advance."""

    run_id: str
    run_seed: int
    round: int
    attempt: int
    length: int  # elements of each vector
    min_clients: int  # no sum over fewer clients is ever unmasked
    neighbours: int = 0  # k of the neighbour graph (0: every client neighbours every other)

    @property
    def context(self) -> bytes:
        return crypto.round_context(self.run_id, self.round, self.attempt)

    def graph(self, roster: list[int]) -> dict[int, list[int]]:
        return neighbours(roster, self.neighbours, self.run_seed, self.round, self.attempt)


def _self_mask(seed: bytes, params: SecAggParams) -> np.ndarray:
    return crypto.keystream(crypto.derive(seed, b"self-mask", params.context), params.length)


def _pair_mask(secret: bytes, params: SecAggParams, a: int, b: int) -> np.ndarray:
    return crypto.keystream(crypto.derive(secret, b"pair-mask", crypto.pair_context(params.context, a, b)),
                            params.length)


def _roster_keys(roster: pb.Roster) -> dict[int, pb.SecAggKeys]:
    """client -> keys; a client's own roster carries keys for itself and its neighbours only (the others name
    their index, which the graph needs)."""
    out = {}
    for entry in roster.clients:
        if entry.client in out:
            raise ProtocolError(f"the roster names client {entry.client} twice")
        if entry.HasField("keys"):
            crypto.check_public(entry.keys.cipher_key, "cipher_key")
            crypto.check_public(entry.keys.mask_key, "mask_key")
        out[entry.client] = entry.keys if entry.HasField("keys") else None
    return out


def _keep_once(store: dict, client: int, message: object, what: str,
               same: Callable[[object, object], bool] = operator.eq) -> None:
    """Take a client's message for a stage; a repeat (a retry) must be the same message, never another."""
    if client in store and not same(store[client], message):
        raise ProtocolError(f"client {client} already sent {what} for this round")
    store[client] = message


class SecAggClient:
    """One client's part in one round. Its secrets live in this object only, for this round only."""

    def __init__(self, index: int, params: SecAggParams) -> None:
        self.index, self.params = index, params
        self._cipher = crypto.X25519PrivateKey.generate()
        self._mask_seed, self._self_seed = crypto.fresh_secret(), crypto.fresh_secret()
        self._mask = crypto.mask_private_key(self._mask_seed)
        self.roster: dict[int, pb.SecAggKeys] = {}
        self.peers: list[int] = []  # neighbours in the roster
        self.held: dict[int, tuple[int, bytes, bytes]] = {}  # owner -> (index, self share, key share)
        self.masked_with: list[int] = []

    def keys(self) -> pb.SecAggKeys:
        return pb.SecAggKeys(cipher_key=crypto.public_bytes(self._cipher), mask_key=crypto.public_bytes(self._mask))

    def shares(self, roster: pb.Roster) -> pb.ShareBundle:
        keys = _roster_keys(roster)
        if self.index not in keys or keys[self.index] != self.keys():
            raise ProtocolError("the roster does not carry this client's keys")
        if len(keys) < self.params.min_clients:
            raise ProtocolError(f"the roster has {len(keys)} clients, fewer than min_clients "
                                f"{self.params.min_clients}")
        self.peers = self.params.graph(sorted(keys))[self.index]
        if any(keys[p] is None for p in self.peers):
            raise ProtocolError("the roster lacks the keys of a neighbour")
        self.roster = keys
        holders = sorted([self.index, *self.peers])
        t = majority(len(holders))
        self_shares = crypto.split(self._self_seed, t, len(holders))
        key_shares = crypto.split(self._mask_seed, t, len(holders))
        bundle = pb.ShareBundle()
        ctx = self.params.context
        for pos, holder in enumerate(holders):
            (index, s_share), (_, k_share) = self_shares[pos], key_shares[pos]
            if holder == self.index:
                self.held[self.index] = (index, s_share, k_share)
                continue
            key = crypto.share_key(self._cipher, keys[holder].cipher_key, ctx, self.index, holder)
            aad = ctx + b"share"
            bundle.shares.add(peer=holder, ciphertext=crypto.seal_share(key, self.index, holder, index, s_share,
                                                                         k_share, aad))
        return bundle

    def receive(self, inbox: pb.ShareBundle) -> None:
        ctx = self.params.context
        for item in inbox.shares:
            sender = item.peer
            if sender not in self.peers or sender in self.held:
                raise ProtocolError(f"a share from client {sender}, who is not an expected neighbour")
            key = crypto.share_key(self._cipher, self.roster[sender].cipher_key, ctx, sender, self.index)
            self.held[sender] = crypto.open_share(key, item.ciphertext, sender, self.index, ctx + b"share")
        self.masked_with = sorted(c for c in self.held if c != self.index)

    def mask(self, vector: np.ndarray) -> bytes:
        """The field vector masked for the round: its bytes are the UpdateRequest payload."""
        x = np.asarray(vector, dtype=np.uint64)
        if x.shape != (self.params.length,):
            raise ProtocolError(f"the vector has {x.size} elements, the round's have {self.params.length}")
        y = fld.add(x, _self_mask(self._self_seed, self.params))
        for peer in self.masked_with:
            secret = crypto.agree(self._mask, self.roster[peer].mask_key)
            stream = _pair_mask(secret, self.params, self.index, peer)
            y = fld.add(y, stream) if self.index < peer else fld.sub(y, stream)
        return fld.pack(y)

    def unmask(self, survivors: pb.Survivors) -> pb.UnmaskBundle:
        submitted, dropped = set(survivors.submitted), set(survivors.dropped)
        if submitted & dropped:
            raise ProtocolError("the coordinator asks for both secrets of a client")
        if self.index not in submitted:
            raise ProtocolError("the coordinator says this client did not submit")
        if len(submitted) < self.params.min_clients:
            raise ProtocolError(f"the sum would cover {len(submitted)} clients, fewer than min_clients "
                                f"{self.params.min_clients}: refusing to unmask it")
        if not connected(submitted, self.params.graph(sorted(self.roster))):
            raise ProtocolError("the submitted clients' neighbour graph falls apart: a part of it could be unmasked "
                                "alone, so this client refuses to unmask any")
        if not dropped & set(self.peers) <= set(self.masked_with):
            raise ProtocolError("the coordinator names a dropped client this client never masked with")
        bundle = pb.UnmaskBundle()
        for owner, (index, s_share, k_share) in sorted(self.held.items()):
            if owner in submitted:
                bundle.shares.add(owner=owner, index=index, share=s_share)
            elif owner in dropped:
                bundle.shares.add(owner=owner, index=index, share=k_share)
        return bundle


@dataclass
class SecureSum:
    """What the coordinator learns of a private round: the clients in the sum and the sum itself."""

    clients: list[int]
    total: np.ndarray  # int64, the signed sum of their field vectors
    failed: str = ""  # why no sum could be unmasked (then clients and total are empty)


@dataclass
class SecAggServer:
    """The coordinator's side of one round: it routes, checks shapes, and learns only the unmasked sum."""

    params: SecAggParams
    drawn: list[int]
    stage: str = "keys"  # keys | shares | masked | unmask | done | failed
    keys: dict[int, pb.SecAggKeys] = field(default_factory=dict)
    graph: dict[int, list[int]] = field(default_factory=dict)
    bundles: dict[int, pb.ShareBundle] = field(default_factory=dict)
    masked: dict[int, np.ndarray] = field(default_factory=dict)
    unmasks: dict[int, pb.UnmaskBundle] = field(default_factory=dict)
    why_failed: str = ""

    def _expect(self, stage: str) -> None:
        if self.stage != stage:
            raise ProtocolError(f"round {self.params.round} is in secure-aggregation stage {self.stage!r}, "
                                f"not {stage!r}")

    def waiting_for(self) -> set[int]:
        """The clients whose message the current stage still lacks."""
        want = {"keys": set(self.drawn), "shares": set(self.keys), "masked": set(self.bundles),
                "unmask": set(self.masked)}.get(self.stage, set())
        have = {"keys": self.keys, "shares": self.bundles, "masked": self.masked, "unmask": self.unmasks}
        return want - set(have.get(self.stage, {}))

    def _fail(self, why: str) -> None:
        self.stage, self.why_failed = "failed", why

    # ---- stage 1: keys -----------------------------------------------------------------------------------
    def add_keys(self, client: int, keys: pb.SecAggKeys) -> None:
        self._expect("keys")
        if client not in self.drawn:
            raise ProtocolError(f"client {client} is not drawn for round {self.params.round}")
        crypto.check_public(keys.cipher_key, "cipher_key")
        crypto.check_public(keys.mask_key, "mask_key")
        _keep_once(self.keys, client, keys, "other keys")

    def close_keys(self) -> None:
        self._expect("keys")
        if len(self.keys) < self.params.min_clients:
            return self._fail(f"{len(self.keys)} clients advertised keys, fewer than min_clients "
                              f"{self.params.min_clients}")
        self.graph = self.params.graph(sorted(self.keys))
        self.stage = "shares"

    def roster(self, client: int) -> pb.Roster:
        """Every advertised client, with keys for `client` and its neighbours only."""
        if self.stage in ("keys", "failed"):
            raise ProtocolError("the roster is not complete")
        near = {client, *self.graph.get(client, [])}
        return pb.Roster(clients=[pb.AdvertisedKeys(client=c, keys=k) if c in near else pb.AdvertisedKeys(client=c)
                                  for c, k in sorted(self.keys.items())])

    # ---- stage 2: shares ---------------------------------------------------------------------------------
    def add_shares(self, client: int, bundle: pb.ShareBundle) -> None:
        self._expect("shares")
        if client not in self.keys:
            raise ProtocolError(f"client {client} advertised no keys for this round")
        to = [s.peer for s in bundle.shares]
        if sorted(to) != self.graph[client]:
            raise ProtocolError(f"client {client} must send exactly one share to each of its neighbours "
                                f"{self.graph[client]}, got recipients {sorted(to)}")
        if any(len(s.ciphertext) != CIPHERTEXT_BYTES for s in bundle.shares):
            raise ProtocolError(f"every encrypted share is {CIPHERTEXT_BYTES} bytes")
        _keep_once(self.bundles, client, bundle, "other shares")

    def close_shares(self) -> None:
        self._expect("shares")
        if len(self.bundles) < self.params.min_clients:
            return self._fail(f"{len(self.bundles)} clients sent shares, fewer than min_clients "
                              f"{self.params.min_clients}")
        self.stage = "masked"

    def inbox(self, client: int) -> pb.ShareBundle:
        if self.stage in ("keys", "shares", "failed"):
            raise ProtocolError("the shares are not complete")
        if client not in self.bundles:
            raise ProtocolError(f"client {client} sent no shares, so it takes no further part in the round")
        out = pb.ShareBundle()
        for sender, bundle in sorted(self.bundles.items()):
            for s in bundle.shares:
                if s.peer == client:
                    out.shares.add(peer=sender, ciphertext=s.ciphertext)
        return out

    # ---- stage 3: masked vectors ---------------------------------------------------------------------------
    def add_masked(self, client: int, payload: bytes) -> None:
        self._expect("masked")
        if client not in self.bundles:
            raise ProtocolError(f"client {client} sent no shares for this round, so its vector cannot be unmasked")
        try:
            y = fld.unpack(payload, self.params.length)
        except ValueError as e:
            raise ProtocolError(str(e)) from None
        _keep_once(self.masked, client, y, "another vector", np.array_equal)

    def close_masked(self) -> None:
        self._expect("masked")
        if len(self.masked) < self.params.min_clients:
            return self._fail(f"{len(self.masked)} clients submitted masked vectors, fewer than min_clients "
                              f"{self.params.min_clients}")
        if not connected(set(self.masked), self.graph):
            return self._fail("the submitted clients' neighbour graph falls apart (too many neighbours dropped), "
                              "so a part of the sum could be unmasked alone")
        self.stage = "unmask"

    def survivors(self) -> pb.Survivors:
        if self.stage not in ("unmask", "done"):
            raise ProtocolError("the masked vectors are not complete")
        return pb.Survivors(submitted=sorted(self.masked), dropped=sorted(set(self.bundles) - set(self.masked)))

    # ---- stage 4: unmasking ------------------------------------------------------------------------------
    def add_unmask(self, client: int, bundle: pb.UnmaskBundle) -> None:
        self._expect("unmask")
        if client not in self.masked:
            raise ProtocolError(f"client {client} submitted no vector, so it holds no part of the unmasking")
        holds = {c for c, b in self.bundles.items() if any(s.peer == client for s in b.shares)} | {client}
        survivors = self.survivors()
        wanted = holds & (set(survivors.submitted) | set(survivors.dropped))
        owners = [s.owner for s in bundle.shares]
        if sorted(owners) != sorted(wanted) or any(len(s.share) != crypto.SECRET_BYTES for s in bundle.shares):
            raise ProtocolError(f"client {client} must send one 16-byte share for each of {sorted(wanted)}")
        _keep_once(self.unmasks, client, bundle, "other unmasking shares")

    def total(self) -> SecureSum:
        """Close the round: rebuild the secrets, remove every mask, return the sum (or why it failed)."""
        self._expect("unmask")
        submitted, dropped = sorted(self.masked), sorted(set(self.bundles) - set(self.masked))
        shares: dict[int, list[tuple[int, bytes]]] = {}
        for bundle in self.unmasks.values():
            for s in bundle.shares:
                shares.setdefault(s.owner, []).append((s.index, bytes(s.share)))
        try:
            secrets = {owner: crypto.combine(shares.get(owner, []), majority(len(self.graph[owner]) + 1))
                       for owner in [*submitted, *dropped]}
        except ValueError as e:
            self._fail(f"too few clients stayed to unmask the sum ({len(self.unmasks)} of {len(submitted)}): {e}")
            return SecureSum([], np.zeros(0, np.int64), self.why_failed)
        try:
            return self._unmasked(submitted, dropped, secrets)
        except ValueError as e:  # e.g. shares that rebuild no usable key: the attempt fails, the coordinator stays
            self._fail(f"the sum could not be unmasked: {e}")
            return SecureSum([], np.zeros(0, np.int64), self.why_failed)

    def _unmasked(self, submitted: list[int], dropped: list[int], secrets: dict[int, bytes]) -> SecureSum:
        total = np.zeros(self.params.length, np.uint64)
        for c in submitted:
            total = fld.sub(fld.add(total, self.masked[c]), _self_mask(secrets[c], self.params))
        for d in dropped:
            key = crypto.mask_private_key(secrets[d])
            for c in self.graph[d]:
                if c in self.masked:  # c added +-PRG(s_cd) for d; take it back out
                    stream = _pair_mask(crypto.agree(key, self.keys[c].mask_key), self.params, c, d)
                    total = fld.sub(total, stream) if c < d else fld.add(total, stream)
        self.stage = "done"
        return SecureSum(submitted, fld.from_field(total))
