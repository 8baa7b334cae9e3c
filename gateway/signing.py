"""The gateway's evidence key: one Ed25519 key pair per gateway, made on first start.

    key = EvidenceKey.load_or_create(state_dir)        # <state_dir>/evidence-key.pem, mode 0600
    signature = key.sign(manifest_bytes)              # 64 bytes
    key.public.b64, key.public.fingerprint             # what `health` and `anfang evidence-key` show
    PublicKey.parse(text).verify(signature, data)      # True / False

The private key never leaves the state folder; the public key is published in
`health` and printed by `anfang evidence-key`, so a receiver can pin it and
check evidence manifests offline (`anfang evidence-verify`, or `openssl
pkeyutl -verify -rawin`). Signatures are made with `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.atomicfile import fsync_dir

KEY_FILE = "evidence-key.pem"
ALGORITHM = "ed25519"


class EvidenceKeyError(Exception):
    """A key that cannot be read, parsed or made; the message is one line."""


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key: 32 raw bytes."""

    raw: bytes

    @property
    def b64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """`sha256:` and the first 16 bytes of the SHA-256 of the raw key, hex: short enough to read out."""
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()[:32]

    def pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def to_dict(self) -> dict[str, str]:
        return {"algorithm": ALGORITHM, "public_key": self.b64, "fingerprint": self.fingerprint}

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def parse(cls, text: str) -> "PublicKey":
        """A key as `anfang evidence-key` prints it: base64 of the 32 raw bytes, or a PEM public key."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            try:
                key = serialization.load_pem_public_key(text.encode("ascii"))
            except ValueError as exc:
                raise EvidenceKeyError(f"not a PEM public key ({exc})") from None
            if not isinstance(key, Ed25519PublicKey):
                raise EvidenceKeyError("not an Ed25519 public key")
            return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise EvidenceKeyError("not a base64 Ed25519 public key") from None
        if len(raw) != 32:
            raise EvidenceKeyError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
        return cls(raw)


class EvidenceKey:
    """The gateway's private signing key."""

    def __init__(self, private: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private = private
        self.path = path
        self.public = PublicKey(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                  serialization.PublicFormat.Raw))

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    @classmethod
    def generate(cls) -> "EvidenceKey":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> "EvidenceKey":
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EvidenceKeyError(f"{path}: cannot read the evidence key ({exc.strerror or exc})") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise EvidenceKeyError(f"{path}: not a PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise EvidenceKeyError(f"{path}: not an Ed25519 private key")
        return cls(key, path)

    @classmethod
    def load_or_create(cls, state_dir: Path) -> "EvidenceKey":
        """The key in `state_dir`, made (mode 0600, durably) if there is none yet.

        An existing file that cannot be read is an error, never replaced: the
        key is the gateway's identity, and evidence already sent was signed with it.
        """
        path = Path(state_dir) / KEY_FILE
        if path.exists():
            return cls.load(path)
        key = cls.generate()
        pem = key._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)    # whatever the umask
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)          # never over a key another process just made
        except FileExistsError:
            return cls.load(path)
        except OSError as exc:
            raise EvidenceKeyError(f"{path}: cannot write the evidence key ({exc.strerror or exc})") from None
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(path.parent)
        key.path = path
        return key
