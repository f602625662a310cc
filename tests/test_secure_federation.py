"""TLS, mutual TLS and signed requests over real sockets: a client with the right certificate and key trains a
whole run; one without a valid certificate or key is refused; plaintext is refused outside loopback."""

import dataclasses

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from inprocess import ServerThread

from fedseed.cli import main
from fedseed.client.config import ClientSection
from fedseed.client.edge import EdgeClient
from fedseed.client.session import CoordinatorUnreachable, Session, open_channel
from fedseed.config import ConfigError, dump_toml, load_document
from fedseed.server.config import load_server_config
from fedseed.v1 import coordinator_pb2 as pb


def server_toml(tmp_path, pki_dir, **server) -> str:
    doc = load_document("simulations/loopback.toml")
    doc["run"]["rounds"] = 2
    doc["federation"].update(num_clients=3, clients_per_round=1)
    doc["server"] = {"address": "127.0.0.1:0", "out": str(tmp_path / "server"),
                     "clients": str(pki_dir / "allow_list.json"), "min_clients": 1, "linger_s": 2.0,
                     "tls_cert": str(pki_dir / "server.pem"), "tls_key": str(pki_dir / "server.key"),
                     "client_ca": str(pki_dir / "ca.pem"), **server}
    path = tmp_path / "server.toml"
    path.write_text(dump_toml(doc))
    return str(path)


def client(pki_dir, tmp_path, name="c0", key_of=None, ca_dir=None, cert=True) -> ClientSection:
    ca_dir = ca_dir or pki_dir
    return ClientSection(id=name, key=str(pki_dir / f"{key_of or name}.ed25519"), ca=str(ca_dir / "ca.pem"),
                         cert=str(pki_dir / f"client-{name}.pem") if cert else "",
                         cert_key=str(pki_dir / f"client-{name}.key") if cert else "",
                         out=str(tmp_path / f"client-{name}"), reconnect_timeout_s=1.0, wait_ms=2000)


def refused(target: str, sec: ClientSection) -> grpc.StatusCode:
    session = Session(target, sec)
    try:
        session.call("Join", pb.JoinRequest(), timeout=10)
    except grpc.RpcError as e:
        return e.code()
    except CoordinatorUnreachable as e:  # retried for the client's whole reconnect window
        assert "TLS certificate" in str(e)
        return e.code
    finally:
        session.close()
    return grpc.StatusCode.OK


def test_mutual_tls_run_and_refusals(pki, tmp_path):
    good, other = pki
    server = ServerThread(server_toml(tmp_path, good), []).start()
    target = f"localhost:{server.port}"
    try:
        assert refused(target, client(good, tmp_path, cert=False)) == grpc.StatusCode.UNAVAILABLE  # no cert
        assert refused(target, client(good, tmp_path, ca_dir=other)) == grpc.StatusCode.UNAVAILABLE  # wrong CA
        assert refused(target, client(good, tmp_path, key_of="c1")) == grpc.StatusCode.UNAUTHENTICATED  # wrong key
        alice_as_c1 = dataclasses.replace(client(good, tmp_path, name="alice"), cert=str(good / "client-c1.pem"),
                                          cert_key=str(good / "client-c1.key"))
        assert refused(target, alice_as_c1) == grpc.StatusCode.PERMISSION_DENIED  # alice's key over c1's cert
        fingerprint = x509.load_pem_x509_certificate((good / "server.pem").read_bytes()).fingerprint(hashes.SHA256())
        assert server.coord.identity == "sha256:" + fingerprint.hex()  # what every request is signed for
        with pytest.raises(ConfigError, match="not the one client.coordinator names"):
            EdgeClient(target, dataclasses.replace(client(good, tmp_path), coordinator="sha256:00")).join()
        summary = EdgeClient(target, dataclasses.replace(client(good, tmp_path),
                                                         coordinator=server.coord.identity)).run()
    finally:
        server.stop()
    assert server.error is None
    assert summary["final_round"] == 2 and summary["rounds_trained"] == 2
    assert summary["final_checksum"] == server.coord.checksums[2]


def test_plaintext_refused_outside_loopback(pki, tmp_path):
    good, _ = pki
    with pytest.raises(ConfigError, match="TLS is required"):
        load_server_config(server_toml(tmp_path, good, address="0.0.0.0:7000", tls_cert="", tls_key="",
                                       client_ca=""))
    load_server_config(server_toml(tmp_path, good, address="0.0.0.0:7000"))  # with TLS it is accepted
    with pytest.raises(ConfigError, match="TLS is required"):
        open_channel("192.0.2.1:7000", ClientSection(id="c0", key="k"))
    toml = tmp_path / "client.toml"
    toml.write_text(f'[client]\nid = "c0"\nkey = "{good / "c0.ed25519"}"\n')
    assert main(["client", "--server", "192.0.2.1:7000", "--config", str(toml)]) == 2
    assert main(["client", "--server", "127.0.0.1:1", "--config", str(tmp_path / "missing.toml")]) == 2
