"""Files only their owner may read: private keys, and a run's log and metrics (every client's payload).

Each is created with mode 0600 by the open call itself -- never written first and tightened after, which leaves
a moment in which anyone may read it -- and a private key that group or others may read is refused on load.
"""

from __future__ import annotations

import os
import pathlib
import stat
from typing import TextIO

PRIVATE = 0o600


def create_private(path: str | pathlib.Path, data: bytes) -> None:
    """Write a new file with mode 0600; an existing file is never overwritten (FileExistsError)."""
    p = pathlib.Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        raise FileExistsError(f"{p} exists; it is not overwritten (choose another folder)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def ensure_private(path: str | pathlib.Path) -> None:
    """Create the file empty with mode 0600 if missing, and take group and other access off one that exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)


def open_private(path: str | pathlib.Path, mode: str = "w") -> TextIO:
    """A text file opened to write ("w") or append ("a"), created 0600 (an existing one is made 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE)
    if os.fstat(fd).st_mode & 0o077:
        os.fchmod(fd, PRIVATE)
    return os.fdopen(fd, mode, encoding="utf-8")


def write_private_text(path: str | pathlib.Path, text: str) -> None:
    with open_private(path) as f:
        f.write(text)


def check_private_key(path: str | pathlib.Path) -> None:
    """Refuse a private key file that group or others can read or write (ValueError naming the file)."""
    if os.name != "posix":
        return  # modes mean nothing there; access is the ACL's
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise ValueError(f"private key {path} has mode {mode:04o}: group or others can access it; "
                         f"run `chmod 600 {path}` (and consider the key exposed if others could read it)")


def read_private_key(path: str | pathlib.Path) -> bytes:
    """The bytes of a private key file, once its mode is checked."""
    check_private_key(path)
    return pathlib.Path(path).read_bytes()
