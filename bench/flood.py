"""The coordinator under a flood on loopback: memory and an honest client's latency while it is attacked.

    .venv/bin/python bench/flood.py [--rounds 500] [--seconds 10] [--baseline] [--out runs/bench-flood]

One coordinator process (log-only, the tiny test model's run) with `--rounds` rounds logged first, so a
full-history SyncLog is O(rounds) of work. Then, from a separate attacker process, at once: 450 unauthenticated
4 MiB requests sent concurrently (raw bytes to SubmitUpdate), one allow-listed key opening 1,000 FetchTask
long-polls, and one allow-listed client calling full-history SyncLog as fast as it can for `--seconds`; while an
honest client, in a third process, sends a signed Heartbeat every 50 ms. Prints the coordinator's idle RSS, its
peak RSS during the flood and the difference, the honest heartbeat latency p50/p99 before and during the flood,
and how many flood requests were refused with which codes; writes bench/results/flood[_baseline].txt. Targets:
RSS within 100 MiB of idle, heartbeat p99 under 100 ms. `--baseline` runs the coordinator with the limits of
before (4 MiB messages, no caps on calls, long-polls or SyncLog) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing
import os
import pathlib
import shutil
import sqlite3
import statistics
import struct
import sys
import threading
import time

import grpc

from fedseed.auth import SignedRequest, generate_key, public_hex, sign_request
from fedseed.config import dump_toml, load_document
from fedseed.simulations.loopback import start, wait_for_port
from fedseed.transport import method_path
from fedseed.v1 import coordinator_pb2 as pb

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIG_REQUESTS, BIG_BYTES, LONG_POLLS, BEAT_S = 450, 4 << 20, 1000, 0.05
NAMES = ("honest", "poller", "syncer", "seeder")  # federation indices 0..3
BASELINE = {"max_message_bytes": 4 << 20, "max_concurrent_rpcs": 1_000_000, "max_long_polls": 100_000,
            "sync_per_minute": 1e9, "sync_burst": 1_000_000}


def write_server(out: pathlib.Path, rounds: int, baseline: bool) -> pathlib.Path:
    keys = {name: generate_key() for name in NAMES}
    for name, key in keys.items():
        (out / f"{name}.key").write_bytes(key.private_bytes_raw())
    allow = {"clients": [{"id": n, "index": i, "public_key": public_hex(keys[n])} for i, n in enumerate(NAMES)]}
    (out / "allow_list.json").write_text(json.dumps(allow))
    doc = load_document(str(ROOT / "simulations/loopback.toml"))
    doc["run"]["rounds"] = rounds + 1000  # never finishes while it is flooded
    doc["federation"].update(num_clients=len(NAMES), clients_per_round=1)
    doc["strategy"].update(local_steps=1)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(out / "server"), "clients": str(out / "allow_list.json"),
                     "hold_model": False, "min_clients": 1, "round_deadline_s": 3600.0}
    if baseline:
        doc["server"].update(BASELINE)
    path = out / "server.toml"
    path.write_text(dump_toml(doc))
    return path


class Signer:
    def __init__(self, out: pathlib.Path, name: str) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.name = name
        self.key = Ed25519PrivateKey.from_private_bytes((out / f"{name}.key").read_bytes())
        self.nonce = time.time_ns() // 1000 + NAMES.index(name) * 10**9
        self.run_id = self.coordinator = ""  # learnt from a hello Join

    def hello(self, port: int) -> Signer:
        """Learn the run and coordinator the signatures must name (a configuration-only Join)."""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = signed_call(ch.unary_unary(method_path("Join"), response_deserializer=pb.JoinReply.FromString))(
                self.sign("Join", pb.JoinRequest()), timeout=30)
        self.run_id, self.coordinator = reply.run.run_id, reply.run.coordinator
        return self

    def sign(self, method: str, msg) -> SignedRequest:
        self.nonce += 1
        return sign_request(msg, method, self.name, self.key, self.nonce, int(time.time() * 1000), self.run_id,
                            self.coordinator)


def signed_call(multicallable):
    """The call, taking a SignedRequest: its bytes as the request, its signature in the metadata."""
    return lambda signed, **kw: multicallable(signed.body, metadata=signed.metadata, **kw)


def aio_call(channel: grpc.aio.Channel, method: str, reply=None, stream: bool = False):
    make = channel.unary_stream if stream else channel.unary_unary
    if reply is None:  # raw bytes both ways
        return make(method_path(method))
    return signed_call(make(method_path(method), response_deserializer=reply.FromString))


async def join(channel: grpc.aio.Channel, signer: Signer, fingerprint: str) -> None:
    if not signer.run_id:
        hello = await aio_call(channel, "Join", pb.JoinReply)(signer.sign("Join", pb.JoinRequest()), timeout=30)
        signer.run_id, signer.coordinator = hello.run.run_id, hello.run.coordinator
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=fingerprint)
    await aio_call(channel, "Join", pb.JoinReply)(signer.sign("Join", pb.JoinRequest(layout=fp)), timeout=30)


async def seed_rounds(port: int, out: pathlib.Path, fingerprint: str, rounds: int) -> None:
    """The seeder alone logs `rounds` rounds (it is the only client online, so every round draws it)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        seeder = Signer(out, "seeder")
        await join(ch, seeder, fingerprint)
        fetch, submit = aio_call(ch, "FetchTask", pb.Task), aio_call(ch, "SubmitUpdate", pb.UpdateReply)
        applied, payload = 0, struct.pack("<f", 0.01)  # one fp32 scalar
        while applied < rounds:
            task = await fetch(seeder.sign("FetchTask", pb.FetchTaskRequest(applied_round=applied, wait_ms=10_000)),
                               timeout=30)
            applied = max([applied, *(u.round for u in task.updates)])
            if task.WhichOneof("kind") == "sync":
                applied = task.sync.last_round
            if task.WhichOneof("kind") == "round" and task.round.round <= rounds:
                r = task.round
                await submit(seeder.sign("SubmitUpdate", pb.UpdateRequest(
                    round=r.round, payload=payload, num_samples=1, start_checksum=r.state_checksum or b"\1" * 16)),
                    timeout=30)  # the next FetchTask brings the round's update once the round has closed


def honest(port: int, out: str, fingerprint: str, ready, stop) -> None:
    """The honest client: joined, then a signed Heartbeat every 50 ms; latencies to out/honest.json."""
    signer = Signer(pathlib.Path(out), "honest").hello(port)
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    fp = pb.LayoutFingerprint(spec_version="fedseed-rng-v1", fingerprint=fingerprint)
    signed_call(ch.unary_unary(method_path("Join"), response_deserializer=pb.JoinReply.FromString))(
        signer.sign("Join", pb.JoinRequest(layout=fp)), timeout=30)
    beat = signed_call(ch.unary_unary(method_path("Heartbeat"), response_deserializer=pb.HeartbeatReply.FromString))
    ready.set()
    rows = []
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            beat(signer.sign("Heartbeat", pb.HeartbeatRequest()), timeout=5)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        t1 = time.monotonic()
        rows.append((time.time(), t1 - t0, code))
        time.sleep(max(0.0, BEAT_S - (t1 - t0)))
    (pathlib.Path(out) / "honest.json").write_text(json.dumps(rows))


async def big_requests(port: int, codes: collections.Counter) -> None:
    data = os.urandom(BIG_BYTES)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)]) as ch:
        call = aio_call(ch, "SubmitUpdate")

        async def one() -> None:
            try:
                await call(data, timeout=60)
                codes["OK"] += 1
            except grpc.RpcError as e:
                codes[e.code().name] += 1
        await asyncio.gather(*(one() for _ in range(BIG_REQUESTS)))


async def long_polls(port: int, out: pathlib.Path, last: int, seconds: float, codes: collections.Counter) -> None:
    poller = Signer(out, "poller").hello(port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        fetch = aio_call(ch, "FetchTask", pb.Task)
        calls = [fetch(poller.sign("FetchTask", pb.FetchTaskRequest(applied_round=last, wait_ms=30_000)),
                       timeout=seconds + 30) for _ in range(LONG_POLLS)]  # signed in order, sent at once
        done, pending = await asyncio.wait([asyncio.ensure_future(c) for c in calls], timeout=seconds)
        for f in done:
            e = f.exception()
            codes["OK" if e is None else e.code().name] += 1
        codes["still open at the end"] += len(pending)
        for f in pending:
            f.cancel()


async def sync_flood(port: int, out: pathlib.Path, seconds: float, codes: collections.Counter) -> None:
    syncer = Signer(out, "syncer").hello(port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        sync = aio_call(ch, "SyncLog", pb.GlobalUpdate, stream=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                [_ async for _ in sync(syncer.sign("SyncLog", pb.SyncRequest(from_round=0)), timeout=30)]
                codes["OK"] += 1
            except grpc.RpcError as e:
                codes[e.code().name] += 1


def attacker(port: int, out: str, fingerprint: str, last: int, seconds: float) -> None:
    """The three floods at once, from their own process; refusal codes to out/attack.json."""
    async def run() -> dict:
        path = pathlib.Path(out)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            for name in ("poller", "syncer"):
                await join(ch, Signer(path, name), fingerprint)
        codes = {k: collections.Counter() for k in ("big", "long_poll", "sync")}
        (path / "attack.started").write_text(repr(time.time()))
        await asyncio.gather(big_requests(port, codes["big"]),
                             long_polls(port, path, last, seconds, codes["long_poll"]),
                             sync_flood(port, path, seconds, codes["sync"]))
        return {k: dict(v) for k, v in codes.items()}
    (pathlib.Path(out) / "attack.json").write_text(json.dumps(asyncio.run(run())))


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def sample_rss(pid: int, stop: threading.Event, samples: list[float]) -> None:
    while not stop.is_set():
        samples.append(rss_mib(pid))
        time.sleep(0.01)


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, -(-int(q * 1000) * len(xs) // 1000) - 1))] if xs else float("nan")


def beats(rows: list, lo: float, hi: float) -> tuple[str, float]:
    """'p50 .. ms  p99 .. ms' of the honest heartbeats sent in [lo, hi), and the p99 in ms."""
    ms = [1000 * dt for t, dt, code in rows if lo <= t < hi and code == "OK"]
    failed = collections.Counter(code for t, _, code in rows if lo <= t < hi and code != "OK")
    p99 = quantile(ms, 0.99)
    text = f"p50 {quantile(ms, 0.5):.1f} ms  p99 {p99:.1f} ms  ({len(ms)} answered"
    return text + (f", refused {dict(failed)})" if failed else ")"), p99 if not failed else float("inf")


def flood(args: argparse.Namespace, out: pathlib.Path, pid: int, port: int, fingerprint: str) -> dict:
    """Honest heartbeats throughout; idle RSS, then the attack, sampling the coordinator's RSS."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    beater = ctx.Process(target=honest, args=(port, str(out), fingerprint, ready, stop))
    beater.start()
    assert ready.wait(60), "the honest client did not join"
    time.sleep(1.0)
    before_lo = time.time()
    idle = [rss_mib(pid) for _ in range(20) if time.sleep(0.1) is None]
    try:  # reset the peak RSS the kernel keeps, so VmHWM is the flood's peak
        pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
        hwm_reset = True
    except OSError:
        hwm_reset = False
    samples: list[float] = []
    halt = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(pid, halt, samples), daemon=True)
    sampler.start()
    attack = ctx.Process(target=attacker, args=(port, str(out), fingerprint, args.rounds, args.seconds))
    attack.start()
    attack.join(args.seconds + 300)
    flood_hi = time.time()
    time.sleep(1.0)
    halt.set()
    sampler.join()
    peak = max([*samples, rss_mib(pid, "VmHWM")] if hwm_reset else samples)
    stop.set()
    beater.join(30)
    flood_lo = float((out / "attack.started").read_text())
    rows = json.loads((out / "honest.json").read_text())
    return {"idle": statistics.median(idle), "peak": peak, "rows": rows, "before": (before_lo, flood_lo),
            "during": (flood_lo, flood_hi), "attack": json.loads((out / "attack.json").read_text()),
            "flood_s": flood_hi - flood_lo}


def report(args: argparse.Namespace, res: dict, limit_line: str) -> str:
    idle, peak = res["idle"], res["peak"]
    before, _ = beats(res["rows"], *res["before"])
    during, p99 = beats(res["rows"], *res["during"])
    attack = res["attack"]
    mode = "the limits of before (--baseline)" if args.baseline else "default limits"
    lines = [
        f"coordinator flooded on loopback for {res['flood_s']:.1f} s, {args.rounds} rounds logged, {mode} "
        f"(requests up to {limit_line})",
        f"({os.cpu_count()} cores shared by the coordinator, the attacker and the honest client, each its own "
        "process)",
        f"coordinator RSS: idle {idle:.0f} MiB, peak during the flood {peak:.0f} MiB, difference {peak - idle:+.0f} "
        f"MiB   (target: within 100 MiB: {'met' if peak - idle <= 100 else 'missed'})",
        f"honest Heartbeat every {1000 * BEAT_S:.0f} ms, before the flood: {before}",
        f"honest Heartbeat during the flood:      {during}   (target p99 < 100 ms: "
        f"{'met' if p99 < 100 else 'missed'})",
        f"{BIG_REQUESTS} unauthenticated {BIG_BYTES >> 20} MiB requests at once: {attack['big']}",
        f"{LONG_POLLS} FetchTask long-polls by one key at once: {attack['long_poll']}",
        f"full-history SyncLog ({args.rounds} rounds) by one client, back to back for {args.seconds:g} s: "
        f"{attack['sync']}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--baseline", action="store_true")
    ap.add_argument("--out", default="runs/bench-flood")
    args = ap.parse_args()
    out = pathlib.Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    server = start(["server", "--config", str(write_server(out, args.rounds, args.baseline))], out / "server.log")
    try:
        port = wait_for_port(out, server)
        db = sqlite3.connect(out / "server" / "log.sqlite")
        fingerprint = json.loads(db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0])
        asyncio.run(seed_rounds(port, out, fingerprint, args.rounds))
        end = time.monotonic() + 60
        while db.execute("SELECT MAX(round) FROM rounds").fetchone()[0] != args.rounds and time.monotonic() < end:
            time.sleep(0.05)
        db.close()
        res = flood(args, out, server.pid, port, fingerprint)
        alive = server.poll() is None
    finally:
        if server.poll() is None:
            server.kill()
    listening = next(line for line in (out / "server.log").read_text().splitlines() if "listening on" in line)
    text = report(args, res, listening.split("requests up to ")[-1].split(",")[0] if "requests up to" in listening
                  else "")
    if not alive:
        text += "the coordinator died during the flood; see its log\n"
    print(text, end="")
    name = "flood_baseline.txt" if args.baseline else "flood.txt"
    (ROOT / "bench" / "results" / name).write_text(text)
    sys.exit(0 if alive else 1)


if __name__ == "__main__":
    main()
