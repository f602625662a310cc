"""Test harness: a real coordinator process and real client processes on 127.0.0.1, which a test can kill
(-9) and restart, while it watches the coordinator's SQLite log."""

from __future__ import annotations

import json
import pathlib
import socket
import sqlite3
import time

from fedseed.simulations.loopback import start, wait_for_port, write_configs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveFederation:
    def __init__(self, config: str, overrides: list[str], out: pathlib.Path) -> None:
        self.out = out
        self.port = free_port()
        self.n, self.server_toml, self.client_tomls = write_configs(config, overrides, out, self.port)
        self.server = None
        self.clients: dict[int, object] = {}
        self.restarts = 0

    def start_server(self) -> None:
        (self.out / "server" / "server.port").unlink(missing_ok=True)
        self.server = start(["server", "--config", str(self.server_toml)], self.out / f"server{self.restarts}.log")
        self.restarts += 1
        wait_for_port(self.out, self.server)

    def start_client(self, i: int) -> None:
        self.clients[i] = start(["client", "--server", f"127.0.0.1:{self.port}", "--config",
                                 str(self.client_tomls[i])], self.out / f"client{i}-{time.monotonic_ns()}.log")

    def query(self, sql: str) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.out / 'server' / 'log.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def last_round(self) -> int:
        rows = self.query("SELECT MAX(round) FROM rounds")
        return int(rows[0][0] or 0) if rows else 0

    def wait_until(self, condition, timeout_s: float = 240.0, what: str = "") -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if condition():
                return
            if self.server is not None and self.server.poll() is not None and self.server.returncode != -9:
                raise AssertionError(f"coordinator exited {self.server.returncode} while waiting for {what}")
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}: {self.logs()}")

    def finish(self, timeout_s: float = 300.0) -> dict:
        for i, c in self.clients.items():
            assert c.wait(timeout=timeout_s) == 0, f"client {i} failed: {self.logs()}"
        assert self.server.wait(timeout=timeout_s) == 0, self.logs()
        return json.loads((self.out / "server" / "summary.json").read_text())

    def client_summary(self, i: int) -> dict:
        return json.loads((self.out / f"client-c{i}" / "summary.json").read_text())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.out.glob("*.log")))

    def stop(self) -> None:
        for p in [*self.clients.values(), self.server]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
