"""Client identities: one Ed25519 key per client and the coordinator's allow-list (id, public key, index)."""

from __future__ import annotations

import json
import pathlib

from fedseed.auth import generate_key, public_hex, save_private_key


def check_client_name(name: str) -> None:
    if not name or len(name) > 128 or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ValueError(f"client name {name!r} must be 1-128 letters, digits, '-', '_' or '.'")


def create_client_keys(out: str | pathlib.Path, clients: list[str]) -> pathlib.Path:
    """Write <out>/<client>.ed25519 for each client and <out>/allow_list.json (indices in the given order)."""
    if not clients:
        raise ValueError("name at least one client")
    for c in clients:
        check_client_name(c)
    if len(set(clients)) != len(clients):
        raise ValueError("client names must be distinct")
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    allow = folder / "allow_list.json"
    if allow.exists():
        raise FileExistsError(f"{allow} exists; choose another folder")
    entries = []
    for index, name in enumerate(clients):
        key = generate_key()
        save_private_key(key, folder / f"{name}.ed25519")
        entries.append({"id": name, "index": index, "public_key": public_hex(key)})
    allow.write_text(json.dumps({"clients": entries}, indent=2) + "\n", encoding="utf-8")
    return allow
