"""The wire protocol: generated code is current, and messages round-trip through their serialized form."""

import filecmp
import subprocess
import sys
from pathlib import Path

import numpy as np

from fedseed import wire
from fedseed.strategies.base import GlobalUpdate
from fedseed.v1 import coordinator_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_is_current(tmp_path):
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    for name in ("coordinator_pb2.py", "coordinator_pb2.pyi", "coordinator_pb2_grpc.py"):
        fresh, committed = tmp_path / "fedseed" / "v1" / name, ROOT / "fedseed" / "v1" / name
        assert filecmp.cmp(fresh, committed, shallow=False), f"{name} is stale: run scripts/gen_protos.sh"


def test_update_message_round_trip():
    scalars = np.asarray([0.5, -1.25, 3.0], "<f4").tobytes()
    msg = pb.UpdateRequest(auth=pb.RequestAuth(client_id="c1", nonce=7, timestamp_ms=1, signature=b"\x01" * 64),
                           round=3, payload=scalars, num_samples=40, start_checksum=b"\xab" * 16)
    back = pb.UpdateRequest.FromString(msg.SerializeToString())
    assert back == msg and np.frombuffer(back.payload, "<f4").tolist() == [0.5, -1.25, 3.0]
    task = pb.Task(wait=pb.Wait(retry_after_ms=500))
    assert pb.Task.FromString(task.SerializeToString()).WhichOneof("kind") == "wait"


def test_dense_form_size_equals_the_serialized_message():
    """The first-order baseline's bytes are counted without building a model-sized message, to the byte."""
    for n in (0, 1, 31, 32, 5000, 40000):
        update = GlobalUpdate(3, "rademacher", dense=np.ones(n, np.float32))
        built = pb.GlobalUpdate(round=3, kind="rademacher", coefs=update.dense.astype("<f4").tobytes(),
                                checksum=b"\0" * 16)
        assert wire.dense_form_size(update, wire.SIZED_CHECKSUM) == built.ByteSize()
