"""The divergence guard watches the held-out loss against the round before; under
"stop", or after three rollbacks in a row, the run ends with a message saying what to change, exit code 3."""

import json

import pytest

from fedseed.cli import main
from fedseed.config import ConfigError, load_config
from fedseed.guard import MAX_ROLLBACKS, DivergenceGuard
from fedseed.robust import RobustSection


def guard_over(losses: list[float]) -> tuple[DivergenceGuard, list[str]]:
    """A guard whose loss reads the given values in turn: the start, then one after each round."""
    values = iter(losses)
    guard = DivergenceGuard(RobustSection(divergence_factor=1.5), lambda: next(values))
    guard.before()
    return guard, [guard.after() for _ in losses[1:]]


def test_a_jump_is_flagged_against_the_round_before():
    _, verdicts = guard_over([1.0, 0.5, 0.9])
    assert "went from 0.5 to 0.9, x1.8" in verdicts[1]


def test_rollbacks_in_a_row_are_counted_and_a_good_round_resets_them():
    guard, _ = guard_over([1.0])
    for _ in range(MAX_ROLLBACKS - 1):
        guard.rolled_back()
    assert guard.rollbacks_in_a_row == MAX_ROLLBACKS - 1
    guard.loss = lambda: 0.9
    assert guard.after() == "" and guard.rollbacks_in_a_row == 0


def test_stop_ends_a_diverging_run_saying_what_to_change(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["simulate", "simulations/smoke.toml", "--quiet", "--out", str(out), "--set", "strategy.lr=3.0",
                 "--set", "run.rounds=8", "--set", "robust.on_divergence=stop"])
    err = capsys.readouterr().err
    assert code == 3
    assert "the run stopped: round 2 was rolled back" in err and "lower strategy.lr (now 3)" in err
    assert "strategy.lr_relative = true" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"] is True and "rolled back" in summary["stopped"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == list(range(3)) and rows[-1]["rolled_back"]
    assert rows[-1]["forwards"] == rows[1]["forwards"] == 3 * 4 * 2  # an undone round's work was done all the same
    assert rows[-1]["checksum"] == rows[-2]["checksum"] == summary["final_checksum"]  # the state before it


def test_rollback_keeps_going_past_a_single_bad_round(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["simulate", "simulations/smoke.toml", "--quiet", "--out", str(out), "--set", "strategy.lr=3.0",
                 "--set", "run.rounds=8"])
    assert code == 0 and "round 6 flagged" in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text()).get("diverged") is None


def test_an_unknown_policy_is_refused():
    with pytest.raises(ConfigError, match="robust.on_divergence' must be one of rollback, flag, stop"):
        load_config("simulations/smoke.toml", ["robust.on_divergence=halt"])


def test_guard_examples_take_the_labels_in_turn():
    """A held-out set ordered by label (the quickstart's first 32 reviews are all positive) still gives the guard
    both labels; unlabelled examples are taken in order."""
    from fedseed.data.examples import Example
    from fedseed.federation import guard_examples

    ordered = [Example(prompt=f"p{i}", label=int(i >= 6)) for i in range(9)]
    assert [e.prompt for e in guard_examples(ordered, 4)] == ["p0", "p6", "p1", "p7"]
    assert [e.label for e in guard_examples(ordered, 9)] == [0, 1, 0, 1, 0, 1, 0, 0, 0]
    tasks = [Example(prompt=f"t{i}", completion="x") for i in range(5)]
    assert [e.prompt for e in guard_examples(tasks, 3)] == ["t0", "t1", "t2"]
