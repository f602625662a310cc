"""Conformance vectors of private rounds (docs/spec/private.md): quantisation, the run's levels and Skellam
parameter, the field encoding, the neighbour graph, key derivation, the mask stream, share encryption, Shamir
sharing, a whole masked round with a dropped client, and the released update. Every value is computed here by
the reference implementation itself (fedseed.secagg, fedseed.private_round, the strategies), fed fixed secrets
where it would draw random ones.

Encodings: bytes as lowercase hex; float64 and float32 as the hex of their IEEE-754 bits (big-endian, 16 and 8
digits); integers as JSON numbers when below 2^53 in magnitude, else as decimal strings; field elements as
JSON numbers (uint32)."""

from __future__ import annotations

import hashlib
import struct
from contextlib import contextmanager

import numpy as np

RUN_ID = "5eed0f00dcafe123"  # run ids are 16 hex digits (fedseed.resume)


def _f64(x: float) -> str:
    return struct.pack(">d", float(x)).hex()


def _f32(x: float) -> str:
    return struct.pack(">f", np.float32(x)).hex()


def _dec(x: int) -> str:
    return str(int(x))


def _fixed(label: str, n: int) -> bytes:
    """Fixed stand-ins for secrets a party draws at random (the vectors give them as inputs)."""
    return hashlib.sha256(b"fedseed-conformance/private/" + label.encode()).digest()[:n]


@contextmanager
def _shamir_coefficients(coefficients: list[bytes]):
    """Make pycryptodome's Shamir.split take these 16-byte coefficients instead of random ones (in the order it
    draws them: the highest degree first), and check that it took every one."""
    from Crypto.Protocol import SecretSharing

    todo = list(coefficients)
    original = SecretSharing.rng

    def rng(n: int) -> bytes:
        if n != 16 or not todo:
            raise RuntimeError("pycryptodome's Shamir.split draws its coefficients differently than expected")
        return todo.pop(0)

    SecretSharing.rng = rng
    try:
        yield
    finally:
        SecretSharing.rng = original
    if todo:
        raise RuntimeError("pycryptodome's Shamir.split drew fewer coefficients than expected")


# ---- quantisation, levels, field ------------------------------------------------------------------------
def _quantise_case(clip: float, levels: int, values: list[float]) -> dict:
    from fedseed.robust import l2_norm
    from fedseed.secagg import field as fld

    quantizer = fld.Quantizer(clip, levels)
    x = np.asarray(values, np.float64)
    clipped = quantizer.clip_vector(x)
    scaled = clipped * (levels / clip)
    truncated = np.trunc(scaled).astype(np.int64)
    q = quantizer.quantize(x)
    elements = fld.to_field(q)
    return {"inputs": {"clip": _f64(clip), "levels": levels, "values": [_f64(v) for v in x]},
            "expected": {"norm": _f64(l2_norm(x)), "scaled": [_f64(v) for v in scaled],
                         "truncated": truncated.tolist(),
                         "sum_sq_truncated": _dec(sum(int(v) ** 2 for v in truncated)),
                         "levels_sq": _dec(levels * levels), "q": q.tolist(),
                         "field": elements.tolist(), "payload": fld.pack(elements).hex()}}


def _quantise() -> dict[str, dict]:
    big = 536870911  # (2^31 - 1) // 4: the levels of a 4-client round without distributed noise
    clip = big / 2 ** 28  # exact: the scaling to levels is exact, so float rounding leaves integers
    a, b, c = 322122805, 284084791, 59986  # 2a^2 + b^2 + c^2 = levels^2 + 6
    return {
        # clipped (norm > clip), negative values rounded toward zero
        "quantise.clipped": _quantise_case(2.0, 715827882, [1.5, -2.25, 0.0, 0.3]),
        # within the clip already, not scaled down
        "quantise.unclipped": _quantise_case(2.0, 715827882, [0.25, -1.0e-3, 1.0, -0.75]),
        # truncation leaves sum q^2 = levels^2 + 1: the largest |q| (index 0) moves one toward zero
        "quantise.adjust": _quantise_case(clip, big, [big / 2 ** 28, 1.0 / 2 ** 28]),
        # sum q^2 = levels^2 + 6 with |q_1| = |q_3| largest: the lowest index (1) moves, toward zero (up)
        "quantise.tie": _quantise_case(clip, big, [b / 2 ** 28, -a / 2 ** 28, -c / 2 ** 28, a / 2 ** 28]),
    }


def _levels(cfg_doc: dict) -> dict:
    """The run's levels and Skellam parameter for a given noise multiplier (no calibration)."""
    cases = []
    for dp, sigma in (("off", 0.0), ("central", 1.5), ("distributed", 1.5), ("distributed", 1e-4)):
        priv = {"secure_aggregation": True, "dp": dp, "clip": 2.0, "min_clients": 3}
        if dp != "off":
            priv |= {"noise_multiplier": sigma, "epsilon": 8.0}
        run = _private_run(cfg_doc | {"privacy": priv})[1]
        msg = run.round_message(0)
        cases.append({"dp": dp, "noise_multiplier": _f64(sigma), "levels": msg.levels,
                      "noise_levels": _f64(msg.noise_levels)})
    return {"inputs": {"clip": _f64(2.0), "clients_per_round": 4, "min_clients": 3,
                       "cases": [{k: c[k] for k in ("dp", "noise_multiplier")} for c in cases]},
            "expected": {"cases": [{k: c[k] for k in ("levels", "noise_levels")} for c in cases]}}


def _field() -> dict:
    from fedseed.secagg import field as fld

    signed = [0, 1, -1, 123456789, -123456789, (1 << 31) - 1, -(1 << 31)]
    elements = fld.to_field(np.asarray(signed, np.int64))
    a = fld.to_field(np.asarray([-5, 7, (1 << 31) - 1], np.int64))
    b = fld.to_field(np.asarray([3, -9, 1], np.int64))
    return {"inputs": {"signed": signed, "a": fld.from_field(a).tolist(), "b": fld.from_field(b).tolist()},
            "expected": {"field": elements.tolist(), "payload": fld.pack(elements).hex(),
                         "back": fld.from_field(elements).tolist(), "a_plus_b": fld.add(a, b).tolist(),
                         "a_minus_b": fld.sub(a, b).tolist(),
                         "a_plus_b_signed": fld.from_field(fld.add(a, b)).tolist()}}


# ---- the neighbour graph ------------------------------------------------------------------------------------
def _graph() -> dict[str, dict]:
    from fedseed.secagg import graph

    roster, seed, rnd, attempt = [13, 0, 2, 3, 5, 8, 11], 7, 3, 1
    ranks = {c: hashlib.sha256(b"fedseed-secagg-ring" + struct.pack("<QIII", seed, rnd, attempt, c)).hexdigest()
             for c in sorted(roster)}
    out = {}
    for k in (2, 3, 0, 6):
        g = graph.neighbours(roster, k, seed, rnd, attempt)
        out[f"graph.k{k}"] = {
            "inputs": {"roster": roster, "k": k, "run_seed": seed, "round": rnd, "attempt": attempt},
            "expected": {"neighbours": {str(c): v for c, v in sorted(g.items())},
                         "thresholds": {str(c): graph.majority(len(v) + 1) for c, v in sorted(g.items())}}}
    out["graph.k2"]["expected"] |= {
        "rank": {str(c): r for c, r in ranks.items()},
        "ring_order": graph.ring_order(sorted(roster), seed, rnd, attempt)}
    g2 = graph.neighbours(roster, 2, seed, rnd, attempt)
    parts = {"whole": sorted(roster), "without_0_and_8": [2, 3, 5, 11, 13], "without_3_and_8": [0, 2, 5, 11, 13]}
    out["graph.k2"]["expected"]["connected"] = {name: graph.connected(set(s), g2) for name, s in parts.items()}
    out["graph.k2"]["inputs"]["subsets"] = parts
    return out


# ---- keys, derivation, streams, shares ----------------------------------------------------------------------
def _keys() -> dict:
    from fedseed.secagg import crypto

    rnd, attempt, sender, receiver = 3, 1, 4, 9
    cipher = {c: _fixed(f"cipher-{c}", 32) for c in (sender, receiver)}
    mask_seed = {c: _fixed(f"mask-seed-{c}", 16) for c in (sender, receiver)}
    self_seed = _fixed(f"self-seed-{sender}", 16)
    ctx = crypto.round_context(RUN_ID, rnd, attempt)
    priv = {c: crypto.X25519PrivateKey.from_private_bytes(k) for c, k in cipher.items()}
    mask = {c: crypto.mask_private_key(s) for c, s in mask_seed.items()}
    cipher_shared = crypto.agree(priv[sender], crypto.public_bytes(priv[receiver]))
    mask_shared = crypto.agree(mask[sender], crypto.public_bytes(mask[receiver]))
    share_ctx = ctx + struct.pack("<II", sender, receiver)
    pair_ctx = crypto.pair_context(ctx, sender, receiver)
    return {"inputs": {"run_id": RUN_ID, "round": rnd, "attempt": attempt, "sender": sender, "receiver": receiver,
                       "cipher_private": {str(c): k.hex() for c, k in cipher.items()},
                       "mask_seed": {str(c): s.hex() for c, s in mask_seed.items()},
                       "self_seed": {str(sender): self_seed.hex()}},
            "expected": {
                "round_context": ctx.hex(),
                "cipher_public": {str(c): crypto.public_bytes(k).hex() for c, k in priv.items()},
                "mask_private": {str(c): crypto.derive(s, b"mask-key", b"").hex() for c, s in mask_seed.items()},
                "mask_public": {str(c): crypto.public_bytes(k).hex() for c, k in mask.items()},
                "mask_key_info": (crypto.LABEL + b"/mask-key/").hex(),
                "cipher_shared": cipher_shared.hex(),
                "share_info": (crypto.LABEL + b"/share/" + share_ctx).hex(),
                "share_key": crypto.share_key(priv[sender], crypto.public_bytes(priv[receiver]), ctx, sender,
                                              receiver).hex(),
                "share_key_other_side": crypto.share_key(priv[receiver], crypto.public_bytes(priv[sender]), ctx,
                                                         sender, receiver).hex(),
                "mask_shared": mask_shared.hex(),
                "pair_info": (crypto.LABEL + b"/pair-mask/" + pair_ctx).hex(),
                "pair_key": crypto.derive(mask_shared, b"pair-mask", pair_ctx).hex(),
                "self_info": (crypto.LABEL + b"/self-mask/" + ctx).hex(),
                "self_key": crypto.derive(self_seed, b"self-mask", ctx).hex()}}


def _prg() -> dict:
    from fedseed.secagg import crypto

    key = bytes(range(32))
    return {"inputs": {"key": key.hex(), "length": 20},
            "expected": {"words": crypto.keystream(key, 20).tolist(),
                         "first_block_bytes": np.asarray(crypto.keystream(key, 16), "<u4").tobytes().hex()}}


def _share_seal(keys: dict) -> dict:
    from fedseed.secagg import crypto

    key = bytes.fromhex(keys["expected"]["share_key"])
    ctx = bytes.fromhex(keys["expected"]["round_context"])
    sender, receiver, index = keys["inputs"]["sender"], keys["inputs"]["receiver"], 3
    self_share, key_share = _fixed("self-share", 16), _fixed("key-share", 16)
    aad = ctx + b"share"
    ciphertext = crypto.seal_share(key, sender, receiver, index, self_share, key_share, aad)
    assert crypto.open_share(key, ciphertext, sender, receiver, aad) == (index, self_share, key_share)
    plain = struct.pack("<III", sender, receiver, index) + self_share + key_share
    return {"inputs": {"key": key.hex(), "sender": sender, "receiver": receiver, "index": index,
                       "self_share": self_share.hex(), "key_share": key_share.hex(), "round_context": ctx.hex()},
            "expected": {"nonce": crypto.NONCE.hex(), "aad": aad.hex(), "plaintext": plain.hex(),
                         "ciphertext": ciphertext.hex()}}


def _shamir() -> dict:
    from fedseed.secagg import crypto

    secret = _fixed("shamir-secret", 16)
    threshold, holders = 3, 5
    coefficients = [_fixed(f"shamir-coefficient-{i}", 16) for i in range(threshold - 1)]  # drawn: x^2, then x^1
    with _shamir_coefficients(coefficients):
        shares = crypto.split(secret, threshold, holders)
    subset = [shares[4], shares[1], shares[3]]
    assert crypto.combine(subset, threshold) == secret
    return {"inputs": {"secret": secret.hex(), "threshold": threshold, "holders": holders,
                       "coefficients": {"x^2": coefficients[0].hex(), "x^1": coefficients[1].hex()},
                       "combine_from": [i for i, _ in subset]},
            "expected": {"shares": {str(i): s.hex() for i, s in shares},
                         "combined": crypto.combine(subset, threshold).hex()}}


# ---- a whole round ------------------------------------------------------------------------------------------
def _round() -> dict:
    from fedseed.secagg import crypto
    from fedseed.secagg import field as fld
    from fedseed.secagg.protocol import SecAggClient, SecAggParams, SecAggServer, _pair_mask, _self_mask

    params = SecAggParams(RUN_ID, 7, 5, 0, 3, 3, 0)
    vectors = {1: [5, -3, 0], 4: [-7, 2, 1], 6: [100, -200, 300], 9: [9, 9, 9]}
    submit = [1, 4, 6]  # 9 shares its secrets, then drops before submitting
    secrets = {c: {"cipher_private": _fixed(f"round-cipher-{c}", 32), "mask_seed": _fixed(f"round-mask-{c}", 16),
                   "self_seed": _fixed(f"round-self-{c}", 16)} for c in vectors}
    agents = {}
    for c, s in secrets.items():
        agent = SecAggClient(c, params)  # its random secrets are replaced by the fixed ones
        agent._cipher = crypto.X25519PrivateKey.from_private_bytes(s["cipher_private"])
        agent._mask_seed, agent._self_seed = s["mask_seed"], s["self_seed"]
        agent._mask = crypto.mask_private_key(s["mask_seed"])
        agents[c] = agent
    server = SecAggServer(params, sorted(vectors))
    for c, agent in agents.items():
        server.add_keys(c, agent.keys())
    server.close_keys()
    coefficients = {c: {kind: {"x^2": _fixed(f"round-{kind}-{c}-x2", 16), "x^1": _fixed(f"round-{kind}-{c}-x1", 16)}
                        for kind in ("self_seed", "mask_seed")} for c in vectors}
    bundles = {}
    for c, agent in agents.items():  # split draws the self seed's polynomial, then the mask seed's
        drawn = [coefficients[c][kind][d] for kind in ("self_seed", "mask_seed") for d in ("x^2", "x^1")]
        with _shamir_coefficients(drawn):
            bundles[c] = agent.shares(server.roster(c))
        server.add_shares(c, bundles[c])
    server.close_shares()
    masked = {}
    for c in submit:
        agents[c].receive(server.inbox(c))
        payload = agents[c].mask(fld.to_field(np.asarray(vectors[c], np.int64)))
        server.add_masked(c, payload)
        masked[c] = payload
    server.close_masked()
    survivors = server.survivors()
    unmask = {}
    for c in submit:
        bundle = agents[c].unmask(survivors)
        server.add_unmask(c, bundle)
        unmask[str(c)] = [{"owner": s.owner, "index": s.index,
                           "secret": "self_seed" if s.owner in survivors.submitted else "mask_seed",
                           "share": s.share.hex()} for s in bundle.shares]
    ssum = server.total()
    masked_total = np.zeros(params.length, np.uint64)
    for c in submit:
        masked_total = fld.add(masked_total, fld.unpack(masked[c], params.length))
    pairs = {}
    for i in sorted(vectors):
        for j in sorted(vectors):
            if i < j:
                secret = crypto.agree(agents[i]._mask, crypto.public_bytes(agents[j]._mask))
                pairs[f"{i},{j}"] = _pair_mask(secret, params, i, j).tolist()
    return {"inputs": {"run_id": RUN_ID, "run_seed": params.run_seed, "round": params.round,
                       "attempt": params.attempt, "length": params.length, "min_clients": params.min_clients,
                       "neighbours": params.neighbours, "vectors": {str(c): v for c, v in vectors.items()},
                       "submitted": submit,
                       "secrets": {str(c): {k: v.hex() for k, v in s.items()} for c, s in secrets.items()},
                       "shamir_coefficients": {str(c): {kind: {d: v.hex() for d, v in poly.items()}
                                                        for kind, poly in per.items()}
                                               for c, per in coefficients.items()}},
            "expected": {
                "mask_public": {str(c): a.keys().mask_key.hex() for c, a in agents.items()},
                "cipher_public": {str(c): a.keys().cipher_key.hex() for c, a in agents.items()},
                "share_indices": {str(c): {str(h): n + 1 for n, h in enumerate(sorted([c, *server.graph[c]]))}
                                  for c in sorted(vectors)},
                "threshold": 3,
                "ciphertexts_from_9": {str(item.peer): item.ciphertext.hex() for item in bundles[9].shares},
                "self_masks": {str(c): _self_mask(s["self_seed"], params).tolist() for c, s in secrets.items()},
                "pair_masks": pairs,
                "masked": {str(c): fld.unpack(p, params.length).tolist() for c, p in masked.items()},
                "payloads": {str(c): p.hex() for c, p in masked.items()},
                "survivors": {"submitted": list(survivors.submitted), "dropped": list(survivors.dropped)},
                "unmask": unmask,
                "sum_of_masked": masked_total.tolist(),
                "clients": ssum.clients, "sum": ssum.total.tolist()}}


# ---- the released update ------------------------------------------------------------------------------------
BASE_DOC = {"run": {"seed": 7, "rounds": 6}, "model": {"name": "tiny-random-llama"}, "data": {"source": "reviews-mini"},
            "federation": {"num_clients": 6, "clients_per_round": 4},
            "strategy": {"name": "fedkseed", "num_seeds": 8, "local_steps": 4, "lr": 1e-3, "lr_schedule": "cosine",
                         "shared_seeds": True}}


def _private_run(doc: dict):
    from fedseed.config import build_config
    from fedseed.private_round import PrivateRun
    from fedseed.strategies import build_strategy
    from fedseed.strategies.base import RunSetup

    cfg = build_config(doc)
    strategy = build_strategy(cfg.strategy)
    strategy.setup(RunSetup(cfg.run.seed, cfg.run.rounds, cfg.federation.num_clients, None, cfg.robust))
    return strategy, PrivateRun(cfg, strategy)


def _update() -> dict:
    from fedseed.secagg.protocol import SecureSum

    strategy, run = _private_run(BASE_DOC | {"privacy": {"secure_aggregation": True, "clip": 2.0, "min_clients": 3}})
    plan = strategy.configure_round(4, [0, 2, 3, 5])
    total = np.asarray([123456789, -98765432, 0, -5], np.int64)
    ssum = SecureSum([0, 2, 5], total)  # client 3 dropped: three clients in the sum
    combined = run.combined(plan, ssum, np.random.default_rng(0))  # no central noise: the generator is unused
    update = strategy.update_from(plan, combined)
    values = run.quantizer.dequantize(total) / len(ssum.clients)
    return {"inputs": {"run_seed": 7, "num_seeds": 8, "round": plan.round, "lr": _f64(plan.lr),
                       "clip": _f64(run.sec.clip), "levels": run.quantizer.levels, "sum": total.tolist(),
                       "clients_in_sum": len(ssum.clients)},
            "expected": {"keys": strategy.private_keys(plan, run.length).tolist(),
                         "step": _f64(run.quantizer.step), "values": [_f64(v) for v in values],
                         "per_key": {str(k): _f64(v) for k, v in zip(combined.keys.tolist(), combined.values)},
                         "pool_indices": update.pool_indices.tolist(),
                         "seeds": [_dec(s) for s in update.seeds.tolist()],
                         "coefs": [_f32(c) for c in update.coefs]}}


def _update_pro() -> dict:
    """FedKSeed-Pro: keys drawn by its weights, and the importance statistics learnt from the released values."""
    from fedseed.secagg.protocol import SecureSum

    doc = BASE_DOC | {"strategy": BASE_DOC["strategy"] | {"name": "fedkseed-pro", "importance_clip": 1e-4},
                      "privacy": {"secure_aggregation": True, "clip": 2.0, "min_clients": 3}}
    strategy, run = _private_run(doc)
    strategy.abs_sum[:] = [0.0, 3e-5, 0.0, 1e-4, 0.0, 0.0, 2e-5, 0.0]  # as if earlier rounds had observed these
    strategy.count[:] = [1, 2, 1, 3, 1, 1, 2, 1]
    plan = strategy.configure_round(4, [0, 2, 3, 5])
    total = np.asarray([123456789, -98765432, 0, -5], np.int64)
    combined = run.combined(plan, SecureSum([0, 2, 5], total), np.random.default_rng(0))
    update = strategy.update_from(plan, combined)
    before = {"abs_sum": [_f64(v) for v in strategy.abs_sum], "count": [_f64(v) for v in strategy.count]}
    strategy.observe_combined(plan, combined)
    return {"inputs": {"run_seed": 7, "num_seeds": 8, "round": plan.round, "lr": _f64(plan.lr),
                       "clip": _f64(run.sec.clip), "levels": run.quantizer.levels, "sum": total.tolist(),
                       "clients_in_sum": 3, "importance_clip": _f64(strategy.cfg.importance_clip),
                       "cum_weights": [int(w) for w in plan.broadcast["cum_weights"]], **before},
            "expected": {"keys": strategy.private_keys(plan, run.length).tolist(),
                         "per_key": {str(k): _f64(v) for k, v in zip(combined.keys.tolist(), combined.values)},
                         "pool_indices": update.pool_indices.tolist(),
                         "seeds": [_dec(s) for s in update.seeds.tolist()],
                         "coefs": [_f32(c) for c in update.coefs],
                         "abs_sum": [_f64(v) for v in strategy.abs_sum],
                         "count": [_f64(v) for v in strategy.count]}}


def vectors() -> dict:
    keys = _keys()
    return {
        **_quantise(),
        "levels": _levels(BASE_DOC),
        "field": _field(),
        **_graph(),
        "keys": keys,
        "prg": _prg(),
        "share_seal": _share_seal(keys),
        "shamir": _shamir(),
        "round": _round(),
        "update": _update(),
        "update.pro": _update_pro(),
    }
