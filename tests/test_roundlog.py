"""The log is the model: weights rebuilt from base + log equal the simulation's, a client that missed rounds
catches up bit-identically, and an exported checkpoint loads and scores like the simulation."""

import json
import os
import shutil
import sqlite3

import pytest
import torch
from states import held_integers

from fedseed import wire
from fedseed.cli import main
from fedseed.config import load_config
from fedseed.federation import build_federation
from fedseed.replay import catch_up, export_checkpoint, materialize_round, open_state
from fedseed.roundlog import RoundLog
from fedseed.simulations.engine import simulate

SMOKE = "simulations/smoke.toml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    cfg = load_config(SMOKE, ["run.rounds=6", "strategy.codec=onebyte"])
    summary = simulate(cfg, str(out), progress=False)
    return out, summary


def test_outputs_written(smoke_run):
    out, summary = smoke_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == list(range(7))
    with RoundLog.open_existing(out) as log:
        for r in rows[1:]:
            assert {"round", "clients", "train_loss", "bytes_up", "bytes_down", "wall_s", "checksum"} <= r.keys()
            # the serialized UpdateRequests of the round's 3 clients: 4 one-byte scalars and a few fields each
            results = log.client_results(r["round"])
            assert [len(x.payload) for x in results] == [4, 4, 4]
            assert r["bytes_up"] == sum(wire.update_request(x, wire.SIZED_CHECKSUM).ByteSize() for x in results)
            assert r["bytes_up"] <= 3 * 36
    assert "eval_accuracy" in rows[-1] and (out / "curves.png").stat().st_size > 1000
    assert summary["final_checksum"] == rows[-1]["checksum"]
    for name in ("log.sqlite", "metrics.jsonl", "summary.json"):  # every client's scalars: the owner's only
        assert os.stat(out / name).st_mode & 0o777 == 0o600, name


def test_materialised_rounds_match_simulation(smoke_run):
    out, _ = smoke_run
    log = RoundLog.open_existing(out)
    for r in (1, 4, 6):
        _, state = materialize_round(log, r)
        assert state.checksum() == log.checksum(r)
    log.close()


def test_catch_up_is_bit_identical(smoke_run):
    out, _ = smoke_run
    log = RoundLog.open_existing(out)
    _, follower = open_state(log)
    for u in log.updates(1, 6):
        follower.apply_seeds(u.seeds, u.coef_ints(), u.kind)
        assert follower.checksum() == log.checksum(u.round)
    _, returning = open_state(log)
    catch_up(returning, list(log.updates(1, 2)))
    catch_up(returning, list(log.updates(3, 6)))  # away for rounds 3..6, then one merged K-vector
    assert torch.equal(held_integers(returning), held_integers(follower))
    assert returning.checksum() == follower.checksum() == log.checksum(6)
    log.close()


def test_fingerprint_mismatch_is_refused(smoke_run, tmp_path):
    out, _ = smoke_run
    shutil.copy(out / "log.sqlite", tmp_path / "log.sqlite")
    with RoundLog(tmp_path / "log.sqlite") as writable:
        writable.set_meta(fingerprint="0" * 64)
    log = RoundLog.open_existing(tmp_path)
    try:
        with pytest.raises(ValueError, match="fingerprint"):
            open_state(log)
    finally:
        log.close()


def test_export_loads_and_scores_like_simulation(smoke_run, tmp_path, capsys):
    out, summary = smoke_run
    target = export_checkpoint(str(out), None, str(tmp_path / "hf"))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    fed = build_federation(load_config(SMOKE, ["run.rounds=6"]))
    metrics = fed.objective.evaluate(model, fed.eval_examples)
    assert metrics["eval_accuracy"] == summary["final"]["eval_accuracy"]
    assert metrics["eval_loss"] == pytest.approx(summary["final"]["eval_loss"], rel=1e-6)

    assert main(["evaluate", SMOKE, "--checkpoint", str(target)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["eval_accuracy"] == summary["final"]["eval_accuracy"]


def test_rounds_must_be_in_order(smoke_run):
    out, _ = smoke_run
    log = RoundLog.open_existing(out)
    u = log.update(2)
    with pytest.raises(ValueError, match="does not follow"):
        log.append(u, [], "x", {})
    assert log.last_round() == 6
    log.close()


OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rounds (round INTEGER PRIMARY KEY, kind TEXT NOT NULL, seeds BLOB NOT NULL, coefs BLOB NOT NULL,
    starts BLOB, stops BLOB, pool_indices BLOB, dense BLOB, checksum TEXT NOT NULL, metrics TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE client_updates (round INTEGER NOT NULL, client INTEGER NOT NULL, num_samples INTEGER NOT NULL,
    payload BLOB NOT NULL, train_loss REAL, skipped INTEGER NOT NULL, PRIMARY KEY (round, client));
CREATE TABLE pending (round INTEGER NOT NULL, client INTEGER NOT NULL, num_samples INTEGER NOT NULL,
    payload BLOB NOT NULL, train_loss REAL, skipped INTEGER NOT NULL, PRIMARY KEY (round, client));
"""


def test_an_older_log_is_migrated_and_its_records_refused_by_name(tmp_path, capsys):
    db = sqlite3.connect(tmp_path / "log.sqlite")
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('strategy', '\"fedkseed\"'), ('spec_version', '\"fedseed-rng-v1\"'), "
               "('fingerprint', '\"ab\"')")
    db.execute("INSERT INTO rounds VALUES (1, 'rademacher', x'', x'', NULL, NULL, NULL, NULL, 'c0ffee', ?, 0)",
               (json.dumps({"round": 1, "clients": 3, "sampled": 3, "bytes_up": 60, "bytes_down": 90}),))
    db.commit()
    db.close()
    with RoundLog(tmp_path / "log.sqlite") as log:  # opening migrates the layout
        assert log.db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert log.strategy_state(1) is None and log.dropped(1) == {}
        assert log.update(1).round == 1 and log.checksum(1) == "c0ffee"
    assert main(["inspect", str(tmp_path)]) == 2
    assert "record schema 0, written by an older fedseed" in capsys.readouterr().err


def test_a_newer_log_is_refused_by_name(tmp_path):
    db = sqlite3.connect(tmp_path / "log.sqlite")
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(ValueError, match="format version 7, newer than this fedseed's 1"):
        RoundLog(tmp_path / "log.sqlite")


def test_reading_commands_change_no_file_and_refuse_what_is_not_a_log(smoke_run, tmp_path, capsys):
    out, _ = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    before = (copy / "log.sqlite").read_bytes()
    assert main(["info", str(copy)]) == 0 and main(["inspect", str(copy)]) == 0
    assert (copy / "log.sqlite").read_bytes() == before  # opened read-only
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    foreign = other.read_bytes()
    (tmp_path / "text").write_text("not a database")
    capsys.readouterr()
    assert main(["inspect", str(other)]) == 2 and "is not a fedseed round log" in capsys.readouterr().err
    assert other.read_bytes() == foreign
    assert main(["inspect", str(tmp_path / "text")]) == 2 and "not a readable round log" in capsys.readouterr().err
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "notes.txt").write_text("keep")
    assert main(["export", str(copy), "--out", str(tmp_path / "ckpt")]) == 2
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "notes.txt"]


def test_a_log_and_its_wal_are_created_private_and_an_older_one_tightened(tmp_path):
    old = os.umask(0)  # nothing masked: only a file created 0600 comes out 0600
    try:
        log = RoundLog(tmp_path / "log.sqlite")
        log.set_meta(run_id="r")
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        log.close()
        assert modes == {"log.sqlite": 0o600, "log.sqlite-wal": 0o600, "log.sqlite-shm": 0o600}, modes
        (tmp_path / "log.sqlite").chmod(0o644)  # as an older fedseed left it
        RoundLog.open_existing(tmp_path).close()
        assert (tmp_path / "log.sqlite").stat().st_mode & 0o777 == 0o644  # reading changes nothing
        RoundLog(tmp_path / "log.sqlite").close()
        assert (tmp_path / "log.sqlite").stat().st_mode & 0o777 == 0o600
        (tmp_path / "text").write_text("not a database")
        (tmp_path / "text").chmod(0o644)
        with pytest.raises(ValueError):
            RoundLog(tmp_path / "text")
        assert (tmp_path / "text").stat().st_mode & 0o777 == 0o644  # not a log: left as it was
    finally:
        os.umask(old)
