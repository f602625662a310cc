"""What the coordinator and its clients share about the connection: the service's name, how messages are
serialized, and which addresses count as loopback (where plaintext is allowed)."""

from __future__ import annotations

import ipaddress

from google.protobuf.message import Message

from fedseed.v1 import coordinator_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Coordinator"].full_name  # "fedseed.v1.Coordinator"


def method_path(method: str) -> str:
    return f"/{SERVICE}/{method}"


def serialize(message: Message) -> bytes:
    return message.SerializeToString()


def is_loopback(address: str) -> bool:
    """True for HOST:PORT whose host is localhost or a loopback IP address."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
