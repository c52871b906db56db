"""Secrets at rest: values the node must be able to use again (a carrier's trunk password answers its digest challenge,
so it cannot be hashed) are stored encrypted with a key that lives outside the database.

The key is the file `secret_key_file` of the node settings (default var/secret.key, mode 0600, made on first start).
Whoever has the database alone — a backup, a replica, a copied file — does not have the passwords. Back the key up
separately; without it the trunk passwords must be set again (docs/security.md).
"""

from __future__ import annotations

import hashlib

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "enc:v1:"


class SealError(ValueError):
    """A stored secret that this node's key cannot open (another node's key, or a damaged value)."""


def private_file(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, from its first byte (never world-readable, not even for a moment):
    write, fsync, rename — the snapshot's writer, which does exactly that."""
    from controlplane.services.snapshot import write_atomically

    write_atomically(Path(path), data)


def shared_secret(path: Path | str) -> str:
    """A node-local shared secret (Kamailio's RPC listener answers only to who shows it): read, or made on first use."""
    import secrets

    import os

    path = Path(path)
    if not path.exists():  # Kamailio and the control plane may start at once (two services): the first link wins
        tmp = path.with_suffix(f".new.{os.getpid()}")
        private_file(tmp, (secrets.token_urlsafe(32) + "\n").encode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip()


class Sealer:
    def __init__(self, key_file: Path | str):
        self.key_file = Path(key_file)
        if not self.key_file.exists():
            private_file(self.key_file, Fernet.generate_key() + b"\n")
        self._fernet = Fernet(self.key_file.read_bytes().strip())

    def seal(self, clear: str | None) -> str | None:
        if not clear or clear.startswith(PREFIX):
            return clear
        return PREFIX + self._fernet.encrypt(clear.encode()).decode()

    def unseal(self, stored: str | None) -> str | None:
        """The clear value; a value stored before sealing existed is returned as it is (and sealed by `seal_all`)."""
        if not stored or not stored.startswith(PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SealError(
                f"a stored secret cannot be opened with the key in {self.key_file} (another node's key?)"
            ) from None


def hash_token(token: str) -> str:
    """An API token as the database keeps it (its SHA-256): a leaked table gives no token."""
    return hashlib.sha256(token.encode()).hexdigest()
