"""Coordinator load: many concurrent clients on loopback submitting tiny signed updates.

    .venv/bin/python bench/load.py [--clients 1000] [--rounds 4] [--out runs/bench-load]

One coordinator process (log-only: it aggregates and logs, holds no weights) and one load process whose
asyncio clients each join, long-poll for a task, and submit one FedKSeed scalar per round -- every request
Ed25519-signed, every accepted update committed to SQLite before the reply. Prints accepted updates/s while
rounds are open and the p50/p99 latency of SubmitUpdate; the goal is >= 1,000 updates/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import shutil
import sqlite3
import statistics
import sys
import time

import grpc
import numpy as np

from fedseed.auth import generate_key, public_hex, sign_request
from fedseed.config import dump_toml, load_document
from fedseed.simulations.loopback import start, wait_for_port
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb

REPLIES = {"Join": pb.JoinReply, "FetchTask": pb.Task, "SubmitUpdate": pb.UpdateReply}


def write_server(out: pathlib.Path, n: int, rounds: int) -> tuple[pathlib.Path, list]:
    keys = [generate_key() for _ in range(n)]
    allow = {"clients": [{"id": f"v{i}", "index": i, "public_key": public_hex(k)} for i, k in enumerate(keys)]}
    (out / "allow_list.json").write_text(json.dumps(allow))
    doc = load_document("simulations/loopback.toml")
    doc["run"]["rounds"] = rounds
    doc["federation"].update(num_clients=n, clients_per_round=n, batch_size=1)
    doc["strategy"].update(local_steps=1, num_seeds=4096)
    doc["data"].update(partition="iid")  # 1,000 shards of a small dataset
    doc["server"] = {"address": "127.0.0.1:0", "out": str(out / "server"), "clients": str(out / "allow_list.json"),
                     "hold_model": False, "min_clients": n, "round_deadline_s": 600.0}
    path = out / "server.toml"
    path.write_text(dump_toml(doc))
    return path, keys


class Virtual:
    def __init__(self, i: int, key, channel: grpc.aio.Channel) -> None:
        self.id, self.key = f"v{i}", key
        self.nonce = time.time_ns() // 1000 + i * 1_000_000
        self.calls = {m: channel.unary_unary(method_path(m), response_deserializer=cls.FromString)
                      for m, cls in REPLIES.items()}
        self.run_id = self.coordinator = ""  # learnt from a hello Join

    async def call(self, method: str, msg):
        self.nonce += 1
        signed = sign_request(msg, method, self.id, self.key, self.nonce, int(time.time() * 1000), self.run_id,
                              self.coordinator)
        return await self.calls[method](signed.body, metadata=signed.metadata, timeout=600)

    async def run(self, fingerprint: str, latencies: list, stamps: list, joined: asyncio.Event) -> None:
        run = (await self.call("Join", pb.JoinRequest())).run  # a hello: the run and coordinator to sign for
        self.run_id, self.coordinator = run.run_id, run.coordinator
        fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=fingerprint)
        await self.call("Join", pb.JoinRequest(layout=fp))
        await joined.wait()
        applied, held = 0, 0
        payload = np.asarray([0.01], "<f4").tobytes()
        while True:
            task = await self.call("FetchTask", pb.FetchTaskRequest(applied_round=applied, wait_ms=60_000,
                                                                    held_round=held))
            applied = max([applied, *(u.round for u in task.updates)])
            kind = task.WhichOneof("kind")
            if kind == "finished":
                return
            if kind == "sync":
                applied = task.sync.last_round
            if kind != "round":
                continue
            r = task.round
            t0 = time.perf_counter()
            await self.call("SubmitUpdate", pb.UpdateRequest(round=r.round, payload=payload, num_samples=1,
                                                             start_checksum=r.state_checksum or b"\1" * 16))
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            stamps.append((r.round, t1))
            held = r.round


async def load(port: int, keys: list, fingerprint: str, channels: int) -> tuple[list, list]:
    chans = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(channels)]
    clients = [Virtual(i, k, chans[i % channels]) for i, k in enumerate(keys)]
    latencies: list[float] = []
    stamps: list[tuple[int, float]] = []
    joined = asyncio.Event()
    tasks = [asyncio.create_task(c.run(fingerprint, latencies, stamps, joined)) for c in clients]
    await asyncio.sleep(0)
    joined.set()
    await asyncio.gather(*tasks)
    for c in chans:
        await c.close()
    return latencies, stamps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--out", default="runs/bench-load")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    toml, keys = write_server(out, args.clients, args.rounds)
    server = start(["server", "--config", str(toml)], out / "server.log")
    try:
        port = wait_for_port(out, server)
        db = sqlite3.connect(out / "server" / "log.sqlite")
        fingerprint = json.loads(db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0])
        db.close()
        latencies, stamps = asyncio.run(load(port, keys, fingerprint, args.channels))
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
    windows = []
    for r in range(1, args.rounds + 1):
        ts = sorted(t for rr, t in stamps if rr == r)
        if len(ts) > 1:
            windows.append((len(ts), ts[-1] - ts[0]))
    rate = sum(n for n, _ in windows) / sum(w for _, w in windows)
    lat = sorted(latencies)
    result = {"clients": args.clients, "rounds": args.rounds, "updates": len(latencies), "updates_per_s": rate,
              "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))]}
    print(f"{result['updates']} signed updates from {args.clients} concurrent clients over {args.rounds} rounds "
          f"(coordinator and load generator on one machine, {__import__('os').cpu_count()} cores)")
    print(f"accepted updates/s while rounds are open: {rate:,.0f}   (goal >= 1,000)")
    print(f"SubmitUpdate latency p50 {result['p50_ms']:.1f} ms   p99 {result['p99_ms']:.1f} ms")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0 if len(latencies) == args.clients * args.rounds else 1)


if __name__ == "__main__":
    main()
