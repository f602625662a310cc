"""A real federation on one machine: one coordinator process and one client process per client, talking gRPC
over 127.0.0.1 with signed requests, from the same configuration the one-process simulation runs -- so the
two paths can be compared checksum for checksum."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import time

from fedseed.config import ConfigError, build_config, dump_toml, load_document
from fedseed.keys import create_client_keys

STARTUP_S = 300.0


def write_configs(config: str, overrides: list[str], out: pathlib.Path,
                  port: int = 0) -> tuple[int, pathlib.Path, list[pathlib.Path]]:
    """server.toml (the run's tables + [server]) and one client TOML per client under out, every path in them
    relative to the file (as both readers resolve them)."""
    doc = load_document(config, overrides)
    cfg = build_config(doc)
    n = cfg.federation.num_clients
    names = [f"c{i}" for i in range(n)]
    create_client_keys(out / "keys", names)
    server = dict(doc.get("server", {}))
    server.update(address=f"127.0.0.1:{port}", out="server", clients="keys/allow_list.json")
    client = dict(doc.get("client", {}))  # the config's own [client] settings apply to every client
    doc = {k: v for k, v in doc.items() if k not in ("server", "client")} | {"server": server}
    server_toml = out / "server.toml"
    server_toml.write_text(dump_toml(doc), encoding="utf-8")
    client_tomls = []
    for name in names:
        table = client | {"id": name, "key": f"keys/{name}.ed25519", "out": f"client-{name}"}
        path = out / f"client-{name}.toml"
        path.write_text(dump_toml({"client": table}), encoding="utf-8")
        client_tomls.append(path)
    return n, server_toml, client_tomls


def wait_for_port(out: pathlib.Path, proc: subprocess.Popen, timeout_s: float = STARTUP_S) -> int:
    port_file = out / "server" / "server.port"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"the coordinator exited with {proc.returncode}; see {out / 'server.log'}")
        time.sleep(0.1)
    raise TimeoutError("the coordinator did not start listening")


def start(args: list[str], log_path: pathlib.Path) -> subprocess.Popen:
    with open(log_path, "w", encoding="utf-8") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "fedseed.cli", *args], stdout=log, stderr=subprocess.STDOUT)


def run_loopback(config: str, overrides: list[str] | None, out_dir: str | None, overwrite: bool = False,
                 quiet: bool = False) -> dict:
    doc = load_document(config, overrides or [])
    build_config(doc)  # a bad config stops here, before any folder is made or replaced
    out = pathlib.Path(out_dir or doc.get("run", {}).get("out", "runs/loopback"))
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; choose another --out or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    n, server_toml, client_tomls = write_configs(config, overrides or [], out)
    server = start(["server", "--config", str(server_toml)], out / "server.log")
    clients: list[subprocess.Popen] = []
    try:
        port = wait_for_port(out, server)
        clients = [start(["client", "--server", f"127.0.0.1:{port}", "--config", str(t)],
                         out / f"{t.stem}.log") for t in client_tomls]
        if not quiet:
            print(f"coordinator on 127.0.0.1:{port}, {n} client processes; logs in {out}", file=sys.stderr)
        while any(c.poll() is None for c in clients) and not any(c.poll() for c in clients):
            time.sleep(0.2)  # stop everything as soon as one client fails, rather than wait for its peers
        codes = [c.poll() for c in clients]
        server_code = server.wait(timeout=120) if not any(codes) else -1
    finally:
        for p in [*clients, server]:
            if p.poll() is None:
                p.kill()
    if server_code != 0 or any(codes):
        raise RuntimeError(f"coordinator exited {server_code}, clients {codes}; logs in {out}")
    summary = json.loads((out / "server" / "summary.json").read_text())
    finals = {json.loads((out / f"client-c{i}" / "summary.json").read_text())["final_checksum"] for i in range(n)}
    summary["clients_agree"] = finals == {summary["final_checksum"]} or not summary["final_checksum"]
    if not summary["clients_agree"]:
        raise ConfigError(f"client checksums {sorted(finals)} differ from the coordinator's")
    return summary
