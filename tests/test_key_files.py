"""Private keys: created 0600 by the call that creates them (never written, then tightened), never overwritten,
refused on load when group or others can read them; the CA's private key is kept out of the kit folder."""

import os
import pathlib
import stat

import pytest

from fedseed.auth import generate_key, load_private_key, save_private_key
from fedseed.certs import create_certs
from fedseed.cli import main
from fedseed.client.config import ClientSection, load_client_config
from fedseed.client.session import open_channel
from fedseed.config import ConfigError
from fedseed.keys import create_client_keys
from fedseed.server.app import credentials
from fedseed.server.config import ServerSection


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0)  # nothing masked: a file made any other way than 0600-at-creation shows it
    yield
    os.umask(old)


def test_keys_are_created_private_and_never_overwritten(tmp_path, monkeypatch, open_umask):
    def no_chmod(*args, **kwargs):
        raise AssertionError("a key file was tightened after it was written")
    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(pathlib.Path, "chmod", no_chmod)
    key = generate_key()
    save_private_key(key, tmp_path / "a.ed25519")
    assert mode(tmp_path / "a.ed25519") == 0o600
    before = (tmp_path / "a.ed25519").read_bytes()
    with pytest.raises(FileExistsError, match="a.ed25519 exists"):
        save_private_key(generate_key(), tmp_path / "a.ed25519")
    assert (tmp_path / "a.ed25519").read_bytes() == before
    create_client_keys(tmp_path / "keys", ["c0", "c1"])
    files = create_certs(tmp_path / "pki", ["localhost"], ["alice"])
    keys = [p for p in files if p.suffix in (".key", ".ed25519")]
    assert len(keys) == 4 and all(mode(p) == 0o600 for p in keys), {p.name: oct(mode(p)) for p in keys}
    assert all(mode(tmp_path / "keys" / f"{c}.ed25519") == 0o600 for c in ("c0", "c1"))


def test_ca_key_is_kept_apart_from_the_kits(tmp_path, capsys):
    assert main(["certs", "--out", str(tmp_path / "pki"), "--clients", "alice,bob"]) == 0
    kit, ca = tmp_path / "pki", tmp_path / "pki-ca"
    assert not list(kit.glob("ca.key")) and (kit / "ca.pem").is_file()
    assert sorted(p.name for p in ca.iterdir()) == ["ca.key", "ca.pem"] and mode(ca) == 0o700
    assert mode(ca / "ca.key") == 0o600 and (ca / "ca.pem").read_bytes() == (kit / "ca.pem").read_bytes()
    assert str(ca / "ca.key") in capsys.readouterr().out
    assert main(["certs", "--out", str(tmp_path / "pki")]) == 2  # refuses to make a second CA for a kit
    assert "already holds a CA" in capsys.readouterr().err
    assert main(["certs", "--out", str(tmp_path / "k2"), "--ca-out", str(tmp_path / "k2" / "ca")]) == 2
    assert "must not be" in capsys.readouterr().err and not (tmp_path / "k2").exists()
    assert main(["certs", "--out", str(tmp_path / "k3"), "--ca-out", str(tmp_path / "offline")]) == 0
    assert (tmp_path / "offline" / "ca.key").is_file() and not (tmp_path / "k3-ca").exists()


def test_readable_private_keys_are_refused_on_load(tmp_path):
    create_certs(tmp_path / "pki", ["localhost"], ["alice"])
    pki = tmp_path / "pki"
    for name in ("alice.ed25519", "server.key", "client-alice.key"):
        (pki / name).chmod(0o640)
    with pytest.raises(ValueError, match=r"alice.ed25519 has mode 0640.*chmod 600"):
        load_private_key(pki / "alice.ed25519")
    server = ServerSection(tls_cert=str(pki / "server.pem"), tls_key=str(pki / "server.key"))
    with pytest.raises(ValueError, match=r"server.key has mode 0640.*chmod 600"):
        credentials(server)
    sec = ClientSection(id="alice", key=str(pki / "alice.ed25519"), ca=str(pki / "ca.pem"),
                        cert=str(pki / "client-alice.pem"), cert_key=str(pki / "client-alice.key"))
    with pytest.raises(ValueError, match=r"client-alice.key has mode 0640.*chmod 600"):
        open_channel("localhost:1", sec)
    toml = tmp_path / "client.toml"
    toml.write_text(f'[client]\nid = "alice"\nkey = "{pki / "alice.ed25519"}"\n')
    with pytest.raises(ConfigError, match=r"client.key.*alice.ed25519 has mode 0640.*chmod 600"):
        load_client_config(str(toml))
    (pki / "alice.ed25519").chmod(0o600)
    load_private_key(pki / "alice.ed25519")


def test_server_refuses_a_readable_tls_key_at_config_time(tmp_path):
    from fedseed.config import dump_toml, load_document
    from fedseed.server.config import load_server_config

    create_certs(tmp_path / "pki", ["localhost"], ["c0"])
    pki = tmp_path / "pki"
    doc = load_document("simulations/loopback.toml")
    doc["server"] = {"clients": str(pki / "allow_list.json"), "tls_cert": str(pki / "server.pem"),
                     "tls_key": str(pki / "server.key")}
    (tmp_path / "server.toml").write_text(dump_toml(doc))
    load_server_config(str(tmp_path / "server.toml"))
    (pki / "server.key").chmod(0o604)
    with pytest.raises(ConfigError, match=r"server.tls_key.*server.key has mode 0604.*chmod 600"):
        load_server_config(str(tmp_path / "server.toml"))
