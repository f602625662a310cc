"""`fedseed experiments --keep DIR`: a finished recipe's record files are copied to DIR/<recipe>, nothing else."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

RECIPES = pathlib.Path("simulations/experiments").resolve()


def test_keep_copies_the_record_of_a_finished_recipe_and_leaves_the_log(tmp_path: pathlib.Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("_sentiment.toml", "sentiment_fedit.toml"):
        shutil.copy(RECIPES / name, recipes / name)
    run = tmp_path / "runs" / "sentiment_fedit"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"strategy": "fedit", "rounds": 20}))
    (run / "metrics.jsonl").write_text('{"round": 0}\n{"round": 20}\n')
    (run / "log.sqlite").write_bytes(b"a round log that stays where it is")
    done = subprocess.run([sys.executable, "-m", "fedseed.cli", "experiments", "--dir", str(recipes), "--out",
                           str(tmp_path / "runs"), "--keep", str(tmp_path / "kept")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kept = tmp_path / "kept" / "sentiment_fedit"
    assert sorted(p.name for p in kept.iterdir()) == ["metrics.jsonl", "summary.json"]
    assert json.loads((kept / "summary.json").read_text()) == {"strategy": "fedit", "rounds": 20}
    assert (kept / "metrics.jsonl").read_text() == '{"round": 0}\n{"round": 20}\n'
    assert (run / "log.sqlite").is_file()
