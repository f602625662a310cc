"""TLS and mutual TLS over real loopback sockets with certificates from `fedseed certs`."""

from concurrent import futures

import grpc
import pytest

from fedseed.cli import main
from fedseed.v1 import coordinator_pb2 as pb
from fedseed.v1 import coordinator_pb2_grpc as pb_grpc


class HeartbeatOnly(pb_grpc.CoordinatorServicer):
    def Heartbeat(self, request, context):  # noqa: N802 (gRPC method name)
        return pb.HeartbeatReply(server_time_ms=1, current_round=7)


def serve(pki_dir, require_client_auth: bool):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_CoordinatorServicer_to_server(HeartbeatOnly(), server)
    pair = ((pki_dir / "server.key").read_bytes(), (pki_dir / "server.pem").read_bytes())
    creds = grpc.ssl_server_credentials([pair], root_certificates=(pki_dir / "ca.pem").read_bytes(),
                                        require_client_auth=require_client_auth)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port


def call(port, ca_dir, client_dir=None):
    key = cert = None
    if client_dir is not None:
        key, cert = (client_dir / "client-alice.key").read_bytes(), (client_dir / "client-alice.pem").read_bytes()
    creds = grpc.ssl_channel_credentials((ca_dir / "ca.pem").read_bytes(), key, cert)
    with grpc.secure_channel(f"127.0.0.1:{port}", creds) as ch:
        return pb_grpc.CoordinatorStub(ch).Heartbeat(pb.HeartbeatRequest(), timeout=5).current_round


def test_tls_server_identity(pki):
    good, other = pki
    server, port = serve(good, require_client_auth=False)
    try:
        assert call(port, good) == 7
        with pytest.raises(grpc.RpcError) as err:
            call(port, other)  # the client does not trust this server's CA
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


def test_mutual_tls_refuses_clients_without_valid_certificate(pki):
    good, other = pki
    server, port = serve(good, require_client_auth=True)
    try:
        assert call(port, good, client_dir=good) == 7
        for client_dir in (None, other):
            with pytest.raises(grpc.RpcError) as err:
                call(port, good, client_dir=client_dir)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


def test_certs_refuses_bad_input(tmp_path, pki, capsys):
    good, _ = pki
    assert main(["certs", "--out", str(good)]) == 2
    assert "already holds a CA" in capsys.readouterr().err
    assert main(["certs", "--out", str(tmp_path / "x"), "--clients", "bad name"]) == 2
    assert "client name" in capsys.readouterr().err
