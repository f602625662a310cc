"""Global updates on the wire (``fedseed.v1.GlobalUpdate``), shared by the coordinator and the edge client.

Three forms: *relayed* (the round's client results; the receiver runs the strategy's own aggregation),
*coefficients* (seed or pool index + float32 coefficient), and *merged* (per-seed int64 coefficient sums over
many rounds, for catch-up). Decoding validates every field against the receiver's strategy and layout, so a
malformed update is refused before it touches the state.
"""

from __future__ import annotations

import numpy as np

from fedseed.directions import ALIGN, MAX_ABS_COEF
from fedseed.rng_spec import MAX_SEED, check_kind
from fedseed.roundlog import merged_seed_coefs
from fedseed.state import ModelState
from fedseed.strategies.base import ClientResult, GlobalUpdate, RoundPlan, Strategy
from fedseed.v1 import coordinator_pb2 as pb

CHECKSUM_BYTES = 16
SIZED_CHECKSUM = "00" * CHECKSUM_BYTES  # stands in for a checksum where only a message's size matters
TYPICAL_DEADLINE_MS = 1 << 40  # an instant in ms between 2004 and 2039: its varint is 6 bytes, like a real one


def checksum_bytes(hex_digest: str) -> bytes:
    return bytes.fromhex(hex_digest) if hex_digest else b""


def relayed(round_idx: int, lr: float, results: list[ClientResult], checksum: str,
            omit_client: int | None = None) -> pb.GlobalUpdate:
    kept = [r for r in results if r.client != omit_client]
    return pb.GlobalUpdate(
        round=round_idx, lr=lr, checksum=checksum_bytes(checksum), own_result_omitted=len(kept) < len(results),
        results=[pb.RelayedResult(client=r.client, num_samples=r.num_samples, payload=r.payload) for r in kept])


def coefficients(update: GlobalUpdate, checksum: str) -> pb.GlobalUpdate:
    if update.dense is not None:
        raise ValueError("dense updates have no wire form")
    msg = pb.GlobalUpdate(round=update.round, kind=update.kind, coefs=update.coefs.astype("<f4").tobytes(),
                          checksum=checksum_bytes(checksum))
    if update.pool_indices is not None:
        msg.pool_indices.extend(update.pool_indices.tolist())
    else:
        msg.seeds.extend(update.seeds.tolist())
    if update.starts is not None:
        msg.starts.extend(update.starts.tolist())
        msg.stops.extend(update.stops.tolist())
    return msg


def round_form(update: GlobalUpdate, results: list[ClientResult], lr: float, checksum: str,
               relayable: bool) -> pb.GlobalUpdate:
    """A logged round as every party is sent it: the clients' relayed scalars when the strategy allows it and
    that is smaller (small rounds), else the coefficient form."""
    msg = coefficients(update, checksum)
    if relayable and results:  # a round with no result (rolled back) travels as its empty coefficient form
        relay = relayed(update.round, lr, results, checksum)
        msg = relay if relay.ByteSize() <= msg.ByteSize() else msg
    return msg


def without_own(msg: pb.GlobalUpdate, client: int) -> pb.GlobalUpdate:
    """A relayed round as sent to a client that holds its own result: that result is left out."""
    own = next((i for i, r in enumerate(msg.results) if r.client == client), None)
    if own is None:
        return msg
    out = pb.GlobalUpdate()
    out.CopyFrom(msg)
    del out.results[own]
    out.own_result_omitted = True
    return out


def round_task(plan: RoundPlan, broadcast: bytes, state_checksum: str,
               deadline_ms: int = TYPICAL_DEADLINE_MS, private: pb.PrivateRound | None = None) -> pb.Task:
    """The task that gives a client its round (a private round's with its secure-aggregation parameters)."""
    return pb.Task(round=pb.RoundTask(round=plan.round, lr=plan.lr, broadcast=broadcast, deadline_ms=deadline_ms,
                                      state_checksum=checksum_bytes(state_checksum), private=private))


def dense_form_size(update: GlobalUpdate, checksum: str) -> int:
    """The serialized size a dense update (the first-order baseline, simulation only) would take with its float32
    weights in the coefficient field, computed without building that model-sized message."""
    n = 4 * update.dense.size
    head = pb.GlobalUpdate(round=update.round, kind=update.kind, checksum=checksum_bytes(checksum)).ByteSize()
    return head + 1 + _varint_size(n) + n if n else head  # field 4: a one-byte tag, the length, the bytes


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def update_request(result: ClientResult, start_checksum: str) -> pb.UpdateRequest:
    """A client's result as it submits it (the signature is added by the session)."""
    return pb.UpdateRequest(round=result.round, payload=result.payload, num_samples=result.num_samples,
                            start_checksum=checksum_bytes(start_checksum), train_loss=result.train_loss,
                            skipped_steps=result.skipped_steps)


def merged(updates: list[GlobalUpdate], checksum: str, pool: np.ndarray | None) -> pb.GlobalUpdate:
    """Rounds first..last as one update of per-(seed, range) integer sums; at most K entries for FedKSeed."""
    kind, items = merged_seed_coefs(updates)
    msg = pb.GlobalUpdate(round=updates[-1].round, first_round=updates[0].round, kind=kind, merged=True,
                          checksum=checksum_bytes(checksum),
                          coefs=np.asarray([c for *_, c in items], "<i8").tobytes())
    index = None if pool is None else {int(s): j for j, s in enumerate(pool.tolist())}
    if index is not None and all(s in index for s, *_ in items):
        msg.pool_indices.extend(index[s] for s, *_ in items)
    else:
        msg.seeds.extend(s for s, *_ in items)
    if any(lo >= 0 for _, lo, _, _ in items):
        msg.starts.extend(lo for _, lo, _, _ in items)
        msg.stops.extend(hi for _, _, hi, _ in items)
    return msg


def _seeds(msg: pb.GlobalUpdate, strategy: Strategy, n: int) -> np.ndarray:
    if len(msg.pool_indices):
        pool = strategy.seed_pool()
        if pool is None:
            raise ValueError(f"strategy {strategy.name} has no seed pool for pool indices")
        idx = np.asarray(msg.pool_indices, np.int64)
        if len(idx) != n or idx.max() >= len(pool):
            raise ValueError("pool indices do not match the coefficients or exceed the pool")
        return pool[idx]
    seeds = np.asarray(msg.seeds, np.uint64)
    if len(seeds) != n or (n and int(seeds.max()) > MAX_SEED):
        raise ValueError("seeds do not match the coefficients or exceed the seed range")
    return seeds.astype(np.int64)


def _ranges(msg: pb.GlobalUpdate, n: int, size: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not len(msg.starts) and not len(msg.stops):
        return None, None
    starts, stops = np.asarray(msg.starts, np.int64), np.asarray(msg.stops, np.int64)
    if len(starts) != n or len(stops) != n or (n and (starts.min() < 0 or (stops <= starts).any()
                                                      or stops.max() > size)):
        raise ValueError("update ranges do not match the coefficients or fall outside the layout")
    if (starts % ALIGN).any() or (stops % ALIGN).any():  # here: a kernel refusing one leaves the others applied
        raise ValueError(f"update ranges must start and stop on multiples of {ALIGN} elements (the layout's padding)")
    return starts, stops


def apply_message(msg: pb.GlobalUpdate, strategy: Strategy, state: ModelState,
                  own: ClientResult | None = None) -> None:
    """Validate one wire update and fold it into the state (raises ValueError, state untouched, if bad)."""
    if msg.results or msg.own_result_omitted:
        if not strategy.relayable:
            raise ValueError(f"round {msg.round}: {strategy.name} updates travel as coefficients, not as relayed "
                             "results (its clients lack what aggregating them needs)")
        results = [ClientResult(msg.round, r.client, r.payload, r.num_samples, float("nan")) for r in msg.results]
        if msg.own_result_omitted:
            if own is None or own.round != msg.round:
                raise ValueError(f"round {msg.round}: own result omitted but not held")
            results.append(own)
        results.sort(key=lambda r: r.client)
        if len({r.client for r in results}) != len(results):
            raise ValueError(f"round {msg.round}: a client appears twice")
        plan = RoundPlan(msg.round, [r.client for r in results], msg.lr)
        update = strategy.aggregate(plan, results)
        strategy.apply(state, update)
        return
    check_kind(msg.kind)
    if msg.merged:
        if state.format == "compact":
            raise ValueError("a compact state cannot apply coefficients merged over rounds in 2**-56 units "
                             "(its rounding is per round and class): ask SyncLog with merged = false")
        coefs = np.frombuffer(msg.coefs, "<i8") if len(msg.coefs) % 8 == 0 else None
        if coefs is None:
            raise ValueError("merged coefficients must be int64")
        seeds = _seeds(msg, strategy, len(coefs))
        starts, stops = _ranges(msg, len(coefs), state.layout.size)
        state.apply_seeds(seeds, coefs.astype(np.int64), msg.kind, starts, stops)
        return
    if len(msg.coefs) % 4:
        raise ValueError("coefficients must be float32")
    coefs = np.frombuffer(msg.coefs, "<f4")
    if not np.isfinite(coefs).all() or (len(coefs) and np.abs(coefs).max() > MAX_ABS_COEF):
        raise ValueError(f"round {msg.round}: coefficients are not finite or exceed {MAX_ABS_COEF}")
    seeds = _seeds(msg, strategy, len(coefs))
    starts, stops = _ranges(msg, len(coefs), state.layout.size)
    strategy.apply(state, GlobalUpdate(msg.round, msg.kind, seeds, coefs.copy(), starts, stops))
