"""A coordinator served from a thread of the test process, for tests that speak raw gRPC to it."""

from __future__ import annotations

import asyncio
import threading

from fedseed.server.app import serve
from fedseed.server.config import load_server_config


class ServerThread:
    def __init__(self, config: str, overrides: list[str]) -> None:
        self.cfg, self.sec = load_server_config(config, overrides)
        self.stopping = False
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _ready(self, coord, port: int) -> None:
        self.coord, self.port = coord, port
        self.ready.set()

    def _run(self) -> None:
        try:
            asyncio.run(serve(self.cfg, self.sec, lambda: self.stopping, self._ready))
        except BaseException as e:  # surfaced by start()/stop()
            self.error = e
            self.ready.set()

    def start(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(120), "coordinator did not start"
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(30)
