"""`fedseed server`: the coordinator process -- gRPC on a socket (TLS outside loopback, optional mutual TLS),
the standard health service, and the round loop until the run is finished."""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import sys
from collections.abc import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fedseed.config import Config
from fedseed.private import read_private_key
from fedseed.server.config import ServerSection
from fedseed.server.coordinator import Coordinator
from fedseed.server.limits import concurrent_rpcs
from fedseed.server.service import CoordinatorService
from fedseed.transport import SERVICE

TICK_S = 0.05
MAX_SEND_BYTES = 1 << 30  # merged catch-up of a long Ferret run can be large; receiving is what is limited


def credentials(sec: ServerSection) -> grpc.ServerCredentials | None:
    if not sec.tls_cert:
        return None
    pair = (read_private_key(sec.tls_key), pathlib.Path(sec.tls_cert).read_bytes())
    root = pathlib.Path(sec.client_ca).read_bytes() if sec.client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=root, require_client_auth=bool(sec.client_ca))


async def serve(cfg: Config, sec: ServerSection, should_stop: Callable[[], bool] = lambda: False,
                on_ready: Callable[[Coordinator, int], None] | None = None) -> dict:
    """Run the coordinator until the run is finished (plus linger_s) or should_stop(); returns the summary."""
    coord = Coordinator(cfg, sec)
    rpcs = concurrent_rpcs(sec, cfg.federation.num_clients)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", coord.max_message_bytes),
                                      ("grpc.max_send_message_length", MAX_SEND_BYTES),
                                      ("grpc.so_reuseport", 0),
                                      # without it the transport widens its receive windows to whatever a peer
                                      # sends: 450 oversize requests filled hundreds of MiB before their refusal
                                      ("grpc.http2.bdp_probe", 0)],
                             maximum_concurrent_rpcs=rpcs)
    server.add_generic_rpc_handlers((CoordinatorService(coord).handler(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    creds = credentials(sec)
    port = server.add_secure_port(sec.address, creds) if creds else server.add_insecure_port(sec.address)
    if port == 0:
        raise OSError(f"could not bind {sec.address}")
    await server.start()
    for name in ("", SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    (coord.out / "server.port").write_text(f"{port}\n", encoding="utf-8")
    print(f"fedseed server: listening on {sec.address.rpartition(':')[0]}:{port} "
          f"({'mutual TLS' if sec.client_ca else 'TLS' if sec.tls_cert else 'plaintext'}, requests up to "
          f"{coord.max_message_bytes} B, {rpcs} calls at once), run of {cfg.run.rounds} rounds, {coord.last} "
          f"logged; writing {coord.out}; coordinator {coord.identity}, run {coord.run_id}", file=sys.stderr, flush=True)
    if on_ready is not None:
        on_ready(coord, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # not the main thread (tests run the server in a thread)
    try:
        while not coord.done() and not stop.is_set() and not should_stop():
            coord.tick()
            await asyncio.sleep(TICK_S)
    finally:
        for name in ("", SERVICE):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(grace=1.0)
        if coord.phase == "finished":
            coord.write_summary()
        coord.registry.flush()
        coord.reader.close()
        coord.log.close()
    summary_path = coord.out / "summary.json"
    return json.loads(summary_path.read_text()) if summary_path.exists() else {"rounds": coord.last}


def run_server(cfg: Config, sec: ServerSection) -> dict:
    return asyncio.run(serve(cfg, sec))
