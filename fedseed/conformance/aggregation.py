"""Vectors of how each networked strategy turns a round's client results into its global update
(docs/spec/aggregation.md): the scalar codecs, the learning-rate schedule, the float32 rounding of coefficients,
the [robust] bounds, every strategy's per-step seeds and one round of each, FedKSeed-Pro's sampling weights, and
a relayed round as a receiver rebuilds it.

Every expected value is computed by the reference implementation (``fedseed.codecs``, ``fedseed.robust``, the
strategies, ``fedseed.wire``) from the fixed inputs here. Encodings: float64 and float32 values as the hex of their
IEEE-754 bits (big-endian, 16 and 8 digits: ``1.0`` is ``3ff0000000000000`` and ``3f800000``); bytes as
lowercase hex; seeds and coefficient integers as decimal strings; a refusal as ``{"refused": true, "why": ...}``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from fedseed import wire
from fedseed.codecs import decode
from fedseed.layout import Layout, TensorSlot
from fedseed.robust import (
    Contribution,
    RobustSection,
    client_weights,
    clipped,
    combine,
    lower_median,
    norms,
)
from fedseed.strategies.base import ClientResult, RoundPlan, RunSetup, as_fp32, scheduled_lr
from fedseed.strategies.fedkseed import SHARED, FedKSeed
from fedseed.strategies.fedkseed_pro import FedKSeedPro
from fedseed.strategies.ferret import Ferret
from fedseed.strategies.mezo import MeZO
from fedseed.strategies.onebyte import OneByte
from fedseed.v1 import coordinator_pb2 as pb


# ---- encodings ---------------------------------------------------------------------------------------------
def f64(x: float) -> str:
    return struct.pack(">d", float(x)).hex()


def f64s(xs) -> list[str]:
    return [f64(x) for x in np.asarray(xs, np.float64).tolist()]


def f32_bits(xs) -> list[str]:
    return [f"{b:08x}" for b in np.asarray(xs, np.float32).astype("<f4").view("<u4").tolist()]


def u64s(xs) -> list[str]:
    return [str(int(x)) for x in np.asarray(xs).tolist()]


def refused(fn, why: str, inputs: dict | None = None) -> dict:
    """Run fn; the entry says it was refused (ValueError), with a stable reason of ours."""
    try:
        with np.errstate(all="ignore"):  # the casts of non-finite values warn before they are refused
            fn()
    except ValueError:
        return {"refused": True, "why": why} | ({} if inputs is None else {"inputs": inputs})
    raise AssertionError(f"expected a refusal: {why}")


def refused_results(strategy, plan: RoundPlan, results: list[ClientResult], why: str) -> dict:
    """A round whose aggregation is refused, with the results that make it so."""
    return refused(lambda: strategy.aggregate(plan, results), why, {"results": results_json(results)})


def update_json(u) -> dict:
    out = {"kind": u.kind, "seeds": u64s(u.seeds), "coefs_f32": f32_bits(u.coefs), "coef_ints": u64s(u.coef_ints())}
    if u.pool_indices is not None:
        out["pool_indices"] = [int(i) for i in u.pool_indices.tolist()]
    if u.starts is not None:
        out["starts"], out["stops"] = [int(v) for v in u.starts.tolist()], [int(v) for v in u.stops.tolist()]
    return out


def results_json(results: list[ClientResult]) -> list[dict]:
    return [{"client": r.client, "num_samples": r.num_samples, "payload": r.payload.hex()} for r in results]


def robust_json(cfg: RobustSection) -> dict:
    """The [robust] keys that differ from the defaults (the aggregation-relevant ones)."""
    d = RobustSection()
    keys = ("weighting", "weight_cap", "clip", "clip_factor", "norm_factor", "rule", "trim_fraction",
            "outlier_factor")
    return {k: getattr(cfg, k) for k in keys if getattr(cfg, k) != getattr(d, k)}


def round_breakdown(strategy, plan: RoundPlan, results: list[ClientResult]) -> dict:
    """The intermediate values of one round, from the reference's own functions, then its update."""
    robust = strategy.run.robust
    contribs = strategy.contributions(plan, results)
    clipped_contribs, bound = clipped(contribs, robust)
    combined = combine(contribs, robust, strategy.weights_clients)
    pooled = strategy.seed_pool() is not None  # keys are pool indices; otherwise the seeds the update lists again
    out = {
        "scalar_bound": "inf" if math.isinf(bound) else f64(bound),
        "norms": f64s(norms(clipped_contribs)),
        "norm_scales": {str(k): f64(v) for k, v in sorted(combined.scales.items())},
        "combined": {"keys": [int(k) for k in combined.keys.tolist()]} if pooled else {},
    }
    out["combined"]["values"] = f64s(combined.values)
    if robust.rule == "mean":
        out["weights"] = f64s(client_weights([c.num_samples for c in contribs], robust, strategy.weights_clients))
    out["update"] = update_json(strategy.aggregate(plan, results))
    return out


def fp32_payload(values) -> bytes:
    return np.asarray(values, np.float64).astype("<f4").tobytes()


# ---- codecs ------------------------------------------------------------------------------------------------
def codec_vectors() -> dict:
    fp32_ok = ["00000000", "00000080", "0000803f", "000080bf", "01000000", "ffff7f7f", "cdcccc3d"]
    fp32 = {"inputs": {"payloads": fp32_ok},
            "expected": {"values": [f64s(decode(bytes.fromhex(h), "fp32"))[0] for h in fp32_ok],
                         "refused": {h: refused(lambda h=h: decode(bytes.fromhex(h), "fp32"), why)
                                     for h, why in (("0000807f", "+inf"), ("0000c07f", "NaN"), ("010080ff", "NaN"),
                                                    ("000080", "3 bytes: not whole float32 scalars"))}}}
    halves = ["0000", "0080", "0100", "ff03", "0004", "003c", "013c", "ff7b", "fffb", "5535", "00b8"]
    fp16 = {"inputs": {"payloads": halves},
            "expected": {"values": [f64s(decode(bytes.fromhex(h), "fp16"))[0] for h in halves],
                         "refused": {h: refused(lambda h=h: decode(bytes.fromhex(h), "fp16"), why)
                                     for h, why in (("007c", "+inf"), ("00fc", "-inf"), ("007e", "NaN"),
                                                    ("017c", "NaN"), ("00", "1 byte: not whole fp16 scalars"))}}}
    table = f64s(decode(bytes(range(128)), "onebyte"))
    signed = bytes([0x00, 0x80, 0x01, 0x81, 0x09, 0x89, 0x7F, 0xFF])
    onebyte = {"inputs": {"magnitude_codes": "0x00..0x7f", "signed_payload": signed.hex()},
               "expected": {"magnitudes": table, "signed_values": f64s(decode(signed, "onebyte"))}}
    return {"codec_fp32": fp32, "codec_fp16": fp16, "codec_onebyte": onebyte}


# ---- learning rate, fp32 coefficients and their integers -------------------------------------------------------
def lr_vectors() -> dict:
    cases = [(1e-5, "constant", 3, 5), (1e-5, "cosine", 1, 5), (1e-5, "cosine", 2, 5), (1e-5, "cosine", 4, 5),
             (1e-5, "cosine", 5, 5), (3e-4, "cosine", 7, 30), (1e-5, "linear", 2, 5), (3e-4, "linear", 29, 30),
             (3e-4, "linear", 1, 1), (3e-4, "cosine", 1, 1)]
    return {"lr_schedule": {
        "inputs": {"cases": [{"lr": f64(lr), "schedule": s, "round": r, "rounds": t} for lr, s, r, t in cases]},
        "expected": {"lr": [f64(scheduled_lr(lr, s, r, t)) for lr, s, r, t in cases]}}}


def fp32_vectors() -> dict:
    f64_in = [1.0 + 2.0**-24, 1.0 + 3 * 2.0**-24, -(1.0 + 2.0**-24), 0.1, 1.0 + 1e-9, 1e-40, 2.0**-150,
              3 * 2.0**-150, -0.0, 3.40282356e38]
    return {
        "as_fp32": {
            "inputs": {"float64": f64s(f64_in), "overflow": f64(3.4028235677973366e38)},
            "expected": {"float32": f32_bits(as_fp32(np.asarray(f64_in))),
                         "overflow": refused(lambda: as_fp32(np.asarray([3.4028235677973366e38])),
                                             "FLT_MAX + half an ulp: the tie rounds to +inf")}},
    }


# ---- the robust bounds on their own ------------------------------------------------------------------------------
def robust_vectors() -> dict:
    claims = [10, 40, 1000, 2**40]
    weighting = {name: f64s(client_weights(claims, RobustSection(weighting=name, weight_cap=cap)))
                 for name, cap in (("equal", 1.0), ("samples", 1.0), ("capped", 1.0))}
    weighting["capped_1.5"] = f64s(client_weights(claims, RobustSection(weighting="capped", weight_cap=1.5)))
    nine = [3, 1, 4, 1, 5, 9, 2, 6, 5]
    weighting["capped_0.3_nine_clients"] = f64s(client_weights(nine, RobustSection(weighting="capped", weight_cap=0.3)))
    med_in = [[3.0, 1.0, 2.0], [4.0, 1.0, 3.0, 2.0], [5.0]]

    def contrib(client, keys, values, n=1):
        return Contribution(client, np.asarray(keys, np.int64), np.asarray(values, np.float64), n)

    shared = [contrib(0, [1, 2, 3], [0.5, -0.25, 0.125]), contrib(1, [1, 2, 3], [0.75, -0.5, 0.0625]),
              contrib(2, [1, 2, 4], [0.625, 0.375, 1.5]), contrib(3, [1, 2, 3], [-4.0, 4.0, -4.0]),
              contrib(4, [1, 3, 4], [0.7, 0.1, 0.2])]
    rules = {}
    for name, cfg in (("mean_default", RobustSection()),
                      ("median", RobustSection(rule="median", norm_factor=0.0)),
                      ("median_norm_bound", RobustSection(rule="median")),
                      ("trimmed_mean_0.2", RobustSection(rule="trimmed_mean", trim_fraction=0.2, norm_factor=0.0)),
                      ("trimmed_mean_0.29", RobustSection(rule="trimmed_mean", trim_fraction=0.29, norm_factor=0.0)),
                      ("clip_factor_2", RobustSection(clip_factor=2.0, norm_factor=0.0)),
                      ("clip_0.6_samples", RobustSection(clip=0.6, weighting="samples"))):
        c = combine(shared, cfg)
        rules[name] = {"robust": robust_json(cfg), "scalar_bound": "inf" if math.isinf(c.bound) else f64(c.bound),
                       "norm_scales": {str(k): f64(v) for k, v in sorted(c.scales.items())},
                       "keys": u64s(c.keys), "values": f64s(c.values)}
    return {
        "client_weights": {"inputs": {"claims": claims, "nine_claims": nine},
                                       "expected": weighting | {"zero_claim": refused(
                                           lambda: client_weights([5, 0], RobustSection()), "num_samples 0")}},
        "lower_median": {"inputs": {"values": med_in},
                                     "expected": {"lower_median": [f64(lower_median(np.asarray(v))) for v in med_in]}},
        "robust_rules": {
            "inputs": {"contributions": [{"client": c.client, "keys": u64s(c.keys), "values": f64s(c.values),
                                          "num_samples": c.num_samples} for c in shared]},
            "expected": rules},
    }


# ---- strategies ----------------------------------------------------------------------------------------------
ONE_TENSOR = Layout((TensorSlot("w", (64,), "float32", 0),), "conformance")
# padded sizes 64, 64, 512, 512, 640, 64: the median (upper, 512) gives blocks of at least 460.8 elements
FERRET_LAYOUT = Layout((TensorSlot("a", (8, 8), "float32", 0), TensorSlot("b", (30,), "float32", 64),
                        TensorSlot("c", (16, 32), "float32", 128), TensorSlot("d", (512,), "float32", 640),
                        TensorSlot("e", (600,), "float32", 1152), TensorSlot("f", (1,), "float32", 1792)),
                       "conformance")


def layout_json(layout: Layout) -> list:
    return [[s.name, list(s.shape), s.offset] for s in layout.slots]


def fedkseed_vectors() -> dict:
    out = {}
    settings = {"num_seeds": 16, "local_steps": 4, "lr": 0.01}
    payloads = {0: [0.5, -1.25, 2.0, 0.1], 3: [-0.75, 0.3, 0.0, 1.5], 5: [40.0, 30.0, -25.0, 12.5]}
    samples = {0: 100, 3: 20, 5: 7}
    for key, robust in (("fedkseed_round", RobustSection()),
                        ("fedkseed_round_samples_clip",
                         RobustSection(weighting="samples", clip_factor=2.0, norm_factor=2.0))):
        s = FedKSeed(**settings).setup(RunSetup(1, 3, 6, ONE_TENSOR, robust))
        plan = s.configure_round(2, [5, 0, 3])
        results = [ClientResult(2, c, fp32_payload(payloads[c]), samples[c], 0.0) for c in plan.clients]
        steps = {str(c): [s.step_index(plan, c, t) for t in range(4)] for c in plan.clients}
        out[key] = {"inputs": {"strategy": {"name": "fedkseed"} | settings, "run_seed": 1, "rounds": 3,
                               "robust": robust_json(robust), "round": 2, "lr": f64(plan.lr),
                               "results": results_json(results)},
                    "expected": {"step_indices": steps} | round_breakdown(s, plan, results)}

    shared_settings = settings | {"shared_seeds": True}
    rules = {}
    for name, robust in (("mean", RobustSection()), ("median", RobustSection(rule="median")),
                         ("trimmed_mean_0.25", RobustSection(rule="trimmed_mean", trim_fraction=0.25))):
        s = FedKSeed(**shared_settings).setup(RunSetup(1, 3, 6, ONE_TENSOR, robust))
        plan = s.configure_round(2, [0, 1, 3, 5])
        vals = {0: [0.5, -1.0, 0.25, 2.0], 1: [0.75, -0.5, 0.125, 1.0], 3: [0.625, -0.75, -0.5, 1.5],
                5: [-8.0, 8.0, -8.0, -8.0]}
        results = [ClientResult(2, c, fp32_payload(vals[c]), 10, 0.0) for c in plan.clients]
        rules[name] = {"robust": robust_json(robust)} | round_breakdown(s, plan, results)
    out["fedkseed_shared_rules"] = {
        "inputs": {"strategy": {"name": "fedkseed"} | shared_settings, "run_seed": 1, "rounds": 3, "round": 2,
                   "lr": f64(plan.lr), "results": results_json(results)},
        "expected": {"step_indices_shared": [s.step_index(plan, c, t) for c in (0,) for t in range(4)],
                     "slot": SHARED} | rules}

    robust = RobustSection(outlier_factor=3.0)
    s = FedKSeed(**settings).setup(RunSetup(1, 3, 6, ONE_TENSOR, robust))
    plan = s.configure_round(2, [0, 1, 3, 5])
    vals = {0: [0.5, -1.25, 2.0, 0.1], 1: [1.0, 0.5, -0.5, 1.0], 3: [-0.75, 0.3, 0.0, 1.5], 5: [9.0, 9.0, -9.0, 9.0]}
    results = [ClientResult(2, c, fp32_payload(vals[c]), 10, 0.0) for c in plan.clients]
    left_out = s.outliers(plan, results)
    kept = [r for r in results if r.client not in left_out]
    out["outliers"] = {
        "inputs": {"strategy": {"name": "fedkseed"} | settings, "run_seed": 1, "rounds": 3,
                   "robust": robust_json(robust), "round": 2, "lr": f64(plan.lr), "results": results_json(results)},
        "expected": {"norms": f64s(norms(s.contributions(plan, results))), "left_out": sorted(left_out),
                     "kept_update": update_json(s.aggregate(plan, kept))}}

    s = FedKSeed(**settings).setup(RunSetup(1, 3, 6, ONE_TENSOR))
    plan = s.configure_round(2, [0, 5])
    over = [ClientResult(2, 5, fp32_payload([60.0, 50.0, 0.0, 0.0]), 1, 0.0)]  # two steps on pool index 2
    out["fedkseed_refusals"] = {
        "inputs": {"strategy": {"name": "fedkseed"} | settings, "run_seed": 1, "rounds": 3, "round": 2,
                   "lr": f64(plan.lr)},
        "expected": {
            "three_scalars": refused_results(s, plan, [ClientResult(2, 0, fp32_payload([1, 2, 3]), 1, 0.0)],
                                             "3 scalars, local_steps is 4"),
            "ragged_payload": refused_results(s, plan, [ClientResult(2, 0, b"\0" * 15, 1, 0.0)], "15 bytes"),
            "nan_scalar": refused_results(s, plan, [ClientResult(
                2, 0, fp32_payload([1, 2, 3]) + bytes.fromhex("0000c07f"), 1, 0.0)], "NaN"),
            "zero_samples": refused_results(s, plan, [ClientResult(2, 0, fp32_payload([1, 2, 3, 4]), 0, 0.0)],
                                            "num_samples 0"),
            "coef_above_one": {"payload": over[0].payload.hex(), "client": 5,
                               "update_coefs_f32": f32_bits(s.aggregate(plan, over).coefs)}
            | refused(lambda: s.aggregate(plan, over).coef_ints(), "-lr * (60 + 50) = -1.1 on pool index 2")}}
    return out


BROADCAST = bytes.fromhex("01000000" "02000000" "ffffffff" + "03000000" * 5)  # a weight of 2**32 - 1


def fedkseed_pro_vectors() -> dict:
    settings = {"num_seeds": 8, "local_steps": 3, "lr": 0.01, "importance_clip": 5.0}
    robust = RobustSection(clip=4.0)
    s = FedKSeedPro(**settings).setup(RunSetup(2, 4, 4, ONE_TENSOR, robust))
    rounds = []
    payloads = {1: {0: [0.5, -2.0, 9.0], 2: [1.0, 0.25, -0.125]}, 2: {0: [3.0, -1.0, 0.5], 2: [-0.75, 6.0, 0.0]}}
    for r in (1, 2):
        plan = s.configure_round(r, [2, 0])
        broadcast = s.encode_broadcast(plan)
        results = [ClientResult(r, c, fp32_payload(payloads[r][c]), 5, 0.0) for c in plan.clients]
        entry = {"round": r, "lr": f64(plan.lr), "broadcast": broadcast.hex(),
                 "cum_weights": [int(v) for v in plan.broadcast["cum_weights"].tolist()],
                 "step_indices": {str(c): [s.step_index(plan, c, t) for t in range(3)] for c in plan.clients},
                 "results": results_json(results)}
        entry |= round_breakdown(s, plan, results)
        s.observe(plan, results)
        entry["after_observe"] = {"abs_sum": f64s(s.abs_sum), "count": f64s(s.count),
                                  "probabilities": f64s(s.probabilities()),
                                  "integer_weights": [int(v) for v in s.integer_weights().tolist()]}
        rounds.append(entry)
    return {
        "fedkseed_pro_rounds": {
            "inputs": {"strategy": {"name": "fedkseed-pro"} | settings, "run_seed": 2, "rounds": 4,
                       "robust": robust_json(robust), "clients": [0, 2],
                       "num_samples": 5, "codec": "fp32",
                       "payloads": {str(r): {str(c): f64s(v) for c, v in p.items()} for r, p in payloads.items()}},
            "expected": {"rounds": rounds}},
        "fedkseed_pro_broadcast_refusals": {
            "inputs": {"num_seeds": 8},
            "expected": {"28_bytes": refused(lambda: s.decode_broadcast(b"\1\0\0\0" * 7), "28 bytes, not 32",
                                             {"broadcast": (b"\1\0\0\0" * 7).hex()}),
                         "a_zero_weight": refused(lambda: s.decode_broadcast(b"\1\0\0\0" * 7 + b"\0" * 4),
                                                  "weight 0", {"broadcast": (b"\1\0\0\0" * 7 + b"\0" * 4).hex()}),
                         "decoded": {"broadcast": BROADCAST.hex(), "cumulative_weights": [
                             int(v) for v in s.decode_broadcast(BROADCAST)["cum_weights"]]}}},
    }


def ferret_vectors() -> dict:
    out = {}
    base = {"num_bases": 8, "local_steps": 2, "lr": 0.05, "server_lr": 0.75}
    # uniform: 8 // 4 blocks = 2 bases per block, fp32
    s = Ferret(**base).setup(RunSetup(3, 2, 4, FERRET_LAYOUT))
    plan = s.configure_round(1, [1, 3])
    g = {1: [0.01, -0.02, 0.03, 0.005, -0.001, 0.0, 0.25, -0.125], 3: [-0.02, 0.04, 0.01, -0.01, 0.002, 0.003,
                                                                        -0.5, 0.0625]}
    results = [ClientResult(1, c, fp32_payload(g[c]), 10 * (c + 1), 0.0) for c in plan.clients]
    out["ferret_round"] = {
        "inputs": {"strategy": {"name": "ferret"} | base, "run_seed": 3, "rounds": 2,
                   "layout": layout_json(FERRET_LAYOUT), "round": 1, "results": results_json(results)},
        "expected": {"blocks": [list(b) for b in s.blocks], "bases_per_block": s.uniform_k(),
                     "basis_seeds": {str(c): [[str(s.basis_seed(1, c, b, k)) for k in range(2)] for b in range(4)]
                                     for c in plan.clients}} | round_breakdown(s, plan, results)}

    adaptive = base | {"adaptive_k": True, "codec": "fp16"}
    robust = RobustSection(weighting="samples")
    s = Ferret(**adaptive).setup(RunSetup(3, 2, 4, FERRET_LAYOUT, robust))
    plan = s.configure_round(2, [0, 2])
    ks = {0: [3, 1, 2, 1], 2: [1, 1, 1, 5]}
    gam = {0: [0.01, -0.02, 0.03, 0.005, -0.001, 0.0, 0.25], 2: [-0.5, 0.04, 0.01, -0.01, 0.002, 0.003, 0.0625, 1.0]}
    header = {c: np.asarray(ks[c], "<u2").tobytes() for c in ks}
    results = [ClientResult(2, c, header[c] + np.asarray(gam[c], np.float64).astype("<f2").tobytes(),
                            [30, 10][i], 0.0) for i, c in enumerate(plan.clients)]
    out["ferret_adaptive_round"] = {
        "inputs": {"strategy": {"name": "ferret"} | adaptive, "run_seed": 3, "rounds": 2,
                   "layout": layout_json(FERRET_LAYOUT), "robust": robust_json(robust), "round": 2,
                   "results": results_json(results)},
        "expected": {"bases_per_block": {str(c): s.split_payload(r.payload)[0] for c, r in zip(plan.clients, results)}}
        | round_breakdown(s, plan, results)
        | {"payload_shorter_than_counts": refused_results(
            s, plan, [ClientResult(2, 0, b"\1\0\1\0\1\0", 1, 0.0)], "6 bytes < 4 uint16"),
           "a_zero_count": refused_results(s, plan, [ClientResult(
               2, 0, np.asarray([0, 1, 1, 1], "<u2").tobytes() + b"\0\0" * 3, 1, 0.0)], "K_0 = 0"),
           "count_mismatch": refused_results(s, plan, [ClientResult(
               2, 0, np.asarray([1, 1, 1, 1], "<u2").tobytes() + b"\0\0" * 5, 1, 0.0)], "5 coefficients, 4 named")}}
    return out


def onebyte_vectors() -> dict:
    settings = {"samples_per_step": 2, "lr": 0.002}
    s = OneByte(**settings).setup(RunSetup(4, 10, 3, ONE_TENSOR, RobustSection(weighting="samples")))
    plan = s.configure_round(6, [2, 0, 1])
    codes = {0: bytes([0x41, 0xC9]), 1: bytes([0x00, 0x28]), 2: bytes([0xFF, 0x7F])}  # 2 clipped by the norm bound
    results = [ClientResult(6, c, codes[c], [1, 100, 1000][c], 0.0) for c in plan.clients]
    return {"onebyte_round": {
        "inputs": {"strategy": {"name": "onebyte"} | settings, "run_seed": 4, "rounds": 10,
                   "robust": {"weighting": "samples"}, "round": 6, "results": results_json(results)},
        "expected": {"sample_seeds": {str(c): [str(s.sample_seed(6, c, n)) for n in range(2)] for c in plan.clients}}
        | round_breakdown(s, plan, results)
        | {"wrong_count": refused_results(s, plan, [ClientResult(6, 0, b"\1", 1, 0.0)], "1 byte, 2 samples")}}}


def seed_vectors() -> dict:
    fk = FedKSeed(num_seeds=4096).setup(RunSetup(123456789, 10, 100, ONE_TENSOR))
    fk_shared = FedKSeed(num_seeds=4096, shared_seeds=True).setup(RunSetup(123456789, 10, 100, ONE_TENSOR))
    plan = RoundPlan(7, [0, 42], 0.0)
    pro = FedKSeedPro(num_seeds=4).setup(RunSetup(123456789, 10, 100, ONE_TENSOR))
    cum = np.cumsum([5, 1, 7, 3])
    pro_plan = RoundPlan(7, [42], 0.0, {"cum_weights": cum})
    fe = Ferret(num_bases=8).setup(RunSetup(123456789, 10, 100, FERRET_LAYOUT))
    ob = OneByte().setup(RunSetup(123456789, 10, 100, ONE_TENSOR))
    mz = MeZO().setup(RunSetup(123456789, 10, 1, ONE_TENSOR))
    return {"step_seeds": {
        "inputs": {"run_seed": 123456789, "round": 7, "fedkseed_num_seeds": 4096, "fedkseed_pro_cum_weights":
                   [int(v) for v in cum.tolist()]},
        "expected": {
            "fedkseed_pool_first": u64s(fk.pool[:3]),
            "fedkseed_index_client42": [fk.step_index(plan, 42, t) for t in range(3)],
            "fedkseed_index_shared": [fk_shared.step_index(plan, 42, t) for t in range(3)],
            "fedkseed_pro_index_client42": [pro.step_index(pro_plan, 42, t) for t in range(6)],
            "ferret_basis_seed_client42": {f"block{b}_k{k}": str(fe.basis_seed(7, 42, b, k))
                                           for b in range(2) for k in range(2)},
            "onebyte_sample_seed_participant42": [str(ob.sample_seed(7, 42, n)) for n in range(3)],
            "mezo_step_seed": [str(mz.step_seed(7, t)) for t in range(3)]}}}


# ---- relayed rounds --------------------------------------------------------------------------------------------
class _Recorder:
    """A stand-in state that records what a receiver applies (the fixed-point state is another section's)."""

    format = "wide"
    layout = ONE_TENSOR

    def __init__(self) -> None:
        self.applied: list[dict] = []

    def apply_seeds(self, seeds, coef_ints, kind, starts=None, stops=None) -> None:
        self.applied.append({"kind": kind, "seeds": u64s(seeds), "coef_ints": u64s(coef_ints),
                             "starts": None if starts is None else [int(v) for v in starts.tolist()],
                             "stops": None if stops is None else [int(v) for v in stops.tolist()]})


def relayed_vectors() -> dict:
    s = FedKSeed(num_seeds=16, local_steps=4, lr=0.01).setup(RunSetup(1, 3, 6, ONE_TENSOR))
    lr = s.lr(2)
    payloads = {0: [0.5, -1.25, 2.0, 0.1], 3: [-0.75, 0.3, 0.0, 1.5], 5: [40.0, 30.0, -25.0, 12.5]}
    results = [ClientResult(2, c, fp32_payload(v), n, 0.0) for (c, v), n in zip(payloads.items(), (100, 20, 7))]
    msg = wire.without_own(wire.relayed(2, lr, results, ""), 3)
    own = results[1]
    seen: list = []
    real = s.aggregate

    def recording(plan, res):
        seen.append((plan, res))
        return real(plan, res)

    s.aggregate = recording
    state = _Recorder()
    wire.apply_message(msg, s, state, own)
    plan, res = seen[0]
    coef_msg = wire.coefficients(real(plan, res), "")
    coef_state = _Recorder()
    wire.apply_message(pb.GlobalUpdate.FromString(coef_msg.SerializeToString()), s, coef_state)
    dup = pb.GlobalUpdate()
    dup.CopyFrom(msg)
    dup.results.add(client=0, num_samples=1, payload=results[0].payload)
    s.aggregate = real
    return {"relayed_round": {
        "inputs": {"strategy": {"name": "fedkseed", "num_seeds": 16, "local_steps": 4, "lr": 0.01}, "run_seed": 1,
                   "rounds": 3, "receiver_client": 3, "message": msg.SerializeToString().hex(),
                   "held_result": results_json([own])[0] | {"round": 2}},
        "expected": {"plan": {"round": plan.round, "clients": plan.clients, "lr": f64(plan.lr)},
                     "result_clients_in_order": [r.client for r in res],
                     "applied": state.applied[0],
                     "coefficient_form": coef_msg.SerializeToString().hex(),
                     "coefficient_form_applies_the_same": coef_state.applied == state.applied,
                     "not_held": refused(lambda: wire.apply_message(msg, s, _Recorder(), None), "own result not held",
                                         {"held_result": None}),
                     "held_for_another_round": refused(lambda: wire.apply_message(
                         msg, s, _Recorder(), ClientResult(1, 3, own.payload, 20, 0.0)), "held round 1",
                         {"held_result": results_json([own])[0] | {"round": 1}}),
                     "client_twice": refused(lambda: wire.apply_message(dup, s, _Recorder(), own), "client 0 twice",
                                             {"message": dup.SerializeToString().hex()})}}}


def vectors() -> dict:
    out: dict = {}
    for part in (codec_vectors, lr_vectors, fp32_vectors, robust_vectors, seed_vectors, fedkseed_vectors,
                 fedkseed_pro_vectors, ferret_vectors, onebyte_vectors, relayed_vectors):
        out |= part()
    return out
