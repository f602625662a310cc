"""TLS material for a federation: a CA, a server certificate (with its DNS names and IP addresses), and
client certificates for mutual TLS, all as PEM files. The CA's private key is kept in a folder of its own, apart
from the files handed to the coordinator and the clients."""

from __future__ import annotations

import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedseed.keys import check_client_name, create_client_keys
from fedseed.private import create_private

VALID_DAYS = 365


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(folder: pathlib.Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    create_private(folder / f"{stem}.key", _key_pem(key))  # 0600 from its creation


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, ca_key: ec.EllipticCurvePrivateKey,
           ca: bool, usage: list | None = None, alt_names: list | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def default_ca_folder(out: str | pathlib.Path) -> pathlib.Path:
    """Where the CA's private key goes unless told: beside the kit folder, never in it (pki -> pki-ca)."""
    folder = pathlib.Path(out)
    return folder.parent / f"{folder.name}-ca"


def _ca_folder(folder: pathlib.Path, ca_out: str | pathlib.Path | None) -> pathlib.Path:
    ca_folder = pathlib.Path(ca_out) if ca_out else default_ca_folder(folder)
    kit, ca_abs = folder.resolve(), ca_folder.resolve()
    if ca_abs == kit or kit in ca_abs.parents:
        raise ValueError(f"the CA key folder {ca_folder} must not be {folder} or inside it: that folder's files "
                         "are handed out to the coordinator and the clients")
    for path in (folder / "ca.pem", ca_folder / "ca.key"):
        if path.exists():
            raise FileExistsError(f"{path.parent} already holds a CA ({path.name}); choose another folder")
    return ca_folder


def create_certs(out: str | pathlib.Path, server_names: list[str], clients: list[str],
                 ca_out: str | pathlib.Path | None = None) -> list[pathlib.Path]:
    """In out: ca.pem, server.pem/.key (valid for server_names), client-NAME.pem/.key for each client, plus each
    client's Ed25519 signing key NAME.ed25519 and the coordinator's allow_list.json. The CA's private key
    ca.key (and a copy of ca.pem) go to ca_out (default: out's sibling OUT-ca), a folder of mode 0700 that is
    needed only to issue more certificates and is handed to no one. Every private key is created 0600."""
    if not server_names:
        raise ValueError("at least one server name or IP address is needed")
    for c in clients:
        check_client_name(c)
    folder = pathlib.Path(out)
    ca_folder = _ca_folder(folder, ca_out)
    folder.mkdir(parents=True, exist_ok=True)
    ca_folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedseed CA")])
    ca = _issue("fedseed CA", ca_key, ca_name, ca_key, ca=True)
    _write(ca_folder, "ca", ca, ca_key)
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue(server_names[0], server_key, ca_name, ca_key, False, [ExtendedKeyUsageOID.SERVER_AUTH],
                    [_alt_name(n) for n in server_names])
    _write(folder, "server", server, server_key)
    for name in clients:
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder, f"client-{name}", _issue(name, key, ca_name, ca_key, False, [ExtendedKeyUsageOID.CLIENT_AUTH]),
               key)
    if clients:
        create_client_keys(folder, clients)  # the Ed25519 request-signing keys and the allow-list
    return sorted(folder.iterdir()) + sorted(ca_folder.iterdir())
