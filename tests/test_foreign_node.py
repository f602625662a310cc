"""A participant written in Node.js from the spec alone (tests/foreign/node) agrees with every conformance vector."""

import pathlib
import shutil
import subprocess

import pytest

RUN = pathlib.Path(__file__).parent / "foreign" / "node" / "run.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_node_participant_reproduces_every_vector():
    done = subprocess.run(["node", str(RUN)], capture_output=True, text=True, timeout=300,
                          env={"VERBOSE": "0", "PATH": str(pathlib.Path(shutil.which("node")).parent)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all conformance checks pass" in done.stdout
    total = next(line for line in done.stdout.splitlines() if line.startswith("total")).split()
    assert int(total[1]) >= 500, total  # checks passed (failures of informational rows do not count)
