"""The edge client's guard rails without a network: a global update whose checksum disagrees stops the client
with an error naming the round, and malformed wire updates are refused before they touch the state."""

import json

import numpy as np
import pytest
import torch
from states import held_integers, reset_to

from fedseed import wire
from fedseed.client.config import ClientSection
from fedseed.client.edge import EdgeClient, ForkError
from fedseed.codecs import encode
from fedseed.config import load_config
from fedseed.federation import build_federation
from fedseed.strategies.base import ClientResult, RoundPlan
from fedseed.v1 import coordinator_pb2 as pb


@pytest.fixture(scope="module")
def fed():
    fed = build_federation(load_config("simulations/loopback.toml"))
    fed.base = held_integers(fed.state), fed.state.room()
    return fed


def reset(fed) -> None:
    reset_to(fed.state, *fed.base)


def offline_client(fed) -> EdgeClient:
    client = EdgeClient.__new__(EdgeClient)  # no session: only the log-following part is exercised
    client.sec, client.fed, client.applied, client.held, client.rows = ClientSection(id="c0"), fed, 0, None, []
    client.checksum = fed.state.checksum()
    return client


def round_one(fed) -> list[ClientResult]:
    steps = fed.strategy.cfg.local_steps
    return [ClientResult(1, c, encode(np.full(steps, 0.5 * (c + 1)), "fp32"), 10 + c, 0.7) for c in (0, 2)]


def test_checksum_mismatch_stops_the_client_naming_the_round(fed):
    client = offline_client(fed)
    with pytest.raises(ForkError, match="after round 1 has checksum .* the coordinator logged 0000"):
        client.apply(wire.relayed(1, 1e-3, round_one(fed), "00" * 16))
    reset(fed)


def test_relayed_update_equals_coordinator_aggregation(fed):
    results = round_one(fed)
    plan = RoundPlan(1, [0, 2], 1e-3)
    reset(fed)
    fed.strategy.apply(fed.state, fed.strategy.aggregate(plan, results))
    expected = fed.state.checksum()
    reset(fed)
    client = offline_client(fed)
    client.held = results[1]  # the coordinator left this client's own result out
    client.apply(wire.relayed(1, 1e-3, results, expected, omit_client=2))
    assert client.checksum == expected and client.applied == 1
    reset(fed)


def test_a_compact_client_refuses_coefficients_merged_over_rounds(fed):
    """The coordinator's merged sums are in 2**-56 units; a compact state rounds per round and class, so it asks
    for rounds one by one (client/edge.py) and refuses a merged message rather than fork."""
    assert fed.state.format == "compact"
    before = held_integers(fed.state)
    msg = pb.GlobalUpdate(round=2, first_round=1, kind="rademacher", merged=True, seeds=[1],
                          coefs=np.asarray([2**40], "<i8").tobytes())
    with pytest.raises(ValueError, match="merged = false"):
        wire.apply_message(msg, fed.strategy, fed.state)
    assert torch.equal(held_integers(fed.state), before)


@pytest.mark.parametrize("bad", [
    pb.GlobalUpdate(round=1, kind="rademacher", seeds=[1, 2], coefs=np.zeros(1, "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", seeds=[1], coefs=np.asarray([np.nan], "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", seeds=[1], coefs=np.asarray([5.0], "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", seeds=[1], coefs=b"\0\0\0"),
    pb.GlobalUpdate(round=1, kind="rademacher", pool_indices=[10**6], coefs=np.zeros(1, "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", seeds=[1], starts=[0], stops=[10**12],
                    coefs=np.zeros(1, "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", seeds=[1, 2], starts=[0, 64], stops=[64, 100],  # 2nd misaligned
                    coefs=np.full(2, 0.5, "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", merged=True, seeds=[1, 2], starts=[0, 64], stops=[64, 100],
                    coefs=np.asarray([2**30, 2**30], "<i8").tobytes()),
    pb.GlobalUpdate(round=1, kind="sobol", seeds=[1], coefs=np.zeros(1, "<f4").tobytes()),
    pb.GlobalUpdate(round=1, kind="rademacher", merged=True, seeds=[1], coefs=np.asarray([2**62], "<i8").tobytes()),
    pb.GlobalUpdate(round=1, lr=1e-3, own_result_omitted=True),
])
def test_malformed_wire_updates_are_refused_untouched(fed, bad):
    before = held_integers(fed.state)
    with pytest.raises(ValueError):
        wire.apply_message(bad, fed.strategy, fed.state)
    assert torch.equal(held_integers(fed.state), before)


def test_local_jsonl_data_replaces_the_partition(tmp_path):
    own = build_federation(load_config("simulations/loopback.toml"))
    words = own.dataset.label_words
    rows = [{"text": f"Review: {t}\nSentiment:", "label": words[i % 2]} for i, t in enumerate(["great", "awful", "ok"])]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    client = offline_client(own)
    client.sec, client.cfg, client.index = ClientSection(id="c1", data=str(path)), own.cfg, 1
    client._use_local_data(own)
    ctx = own.context(1, 1)
    assert ctx.num_samples == 3 and own.dataset.examples[0].label == 0
    batch = ctx.next_batch()
    local = {ex.prompt: ex.label for ex in own.dataset.examples}
    texts = [own.lm.tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(batch.input_ids, batch.attention_mask)]
    assert set(texts) == set(local) == {f"Review: {t}\nSentiment:" for t in ("great", "awful", "ok")}
    assert batch.labels.tolist() == [local[t] for t in texts]  # every row trains on the client's own label


def test_a_relayed_update_for_a_strategy_that_never_relays_is_refused(fed):
    """FedKSeed-Pro's clients lack the round's sampling weights, so its updates travel as coefficients; a relayed one
    (from a faulty or hostile coordinator) is refused with a ValueError, not a crash, and the state is untouched."""
    from fedseed.strategies.base import RunSetup
    from fedseed.strategies.fedkseed_pro import FedKSeedPro

    pro = FedKSeedPro(num_seeds=8, local_steps=2).setup(RunSetup(1, 3, 2, fed.state.layout))
    before = held_integers(fed.state)
    msg = wire.relayed(1, 1e-3, [ClientResult(1, 0, encode(np.ones(2), "fp32"), 1, 0.0)], "")
    with pytest.raises(ValueError, match="travel as coefficients"):
        wire.apply_message(msg, pro, fed.state)
    assert torch.equal(held_integers(fed.state), before)
