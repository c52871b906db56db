"""The node's TLS certificate (docs/tls.md): a self-signed one made for local use when none is configured, and what
the NOC and the admin API are told about the one Kamailio serves (its subject, names, fingerprint, expiry).

Every function takes paths and returns values or raises `TlsProblem` with a sentence naming the file and what is
wrong with it: a node refuses to start on a broken pair, and `tls.reload` refuses to load one (Kamailio keeps the
certificate it has).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SELF_SIGNED_DAYS = 365
RENEW_BEFORE_DAYS = 30  # a self-signed certificate this close to its end is made again at the node's start


class TlsProblem(ValueError):
    """A certificate or key that cannot be served; the message names the file and the reason."""


@dataclass(frozen=True)
class CertInfo:
    subject: str
    names: tuple[str, ...]  # subjectAltName DNS names and addresses
    issuer: str
    not_before: float  # Unix time
    not_after: float
    sha256: str  # fingerprint, hex with colons
    self_signed: bool

    def as_doc(self, now: float) -> dict:
        return {
            "subject": self.subject,
            "names": list(self.names),
            "issuer": self.issuer,
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "expires_in_days": round((self.not_after - now) / 86400, 1),
            "sha256": self.sha256,
            "self_signed": self.self_signed,
        }


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsProblem(f"{what} {path}: {exc.strerror or exc}") from None


def load_chain(path: Path) -> list[x509.Certificate]:
    data = _read(path, "certificate")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsProblem(f"certificate {path}: not a PEM certificate") from None
    if not chain:
        raise TlsProblem(f"certificate {path}: no certificate in it")
    return chain


def inspect(cert_path: Path) -> CertInfo:
    """What the first certificate of a PEM file says (the one a server presents; the rest is its chain)."""
    cert = load_chain(cert_path)[0]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(a) for a in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        names = ()
    fp = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        names=names,
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        sha256=":".join(fp[i : i + 2] for i in range(0, len(fp), 2)),
        self_signed=cert.issuer == cert.subject,
    )


def check_pair(cert_path: Path, key_path: Path) -> CertInfo:
    """The certificate and key can be served together: both readable PEM, the key unencrypted and the certificate's."""
    info = inspect(cert_path)
    cert = load_chain(cert_path)[0]
    try:
        key = serialization.load_pem_private_key(_read(key_path, "private key"), password=None)
    except TypeError:
        raise TlsProblem(
            f"private key {key_path}: encrypted with a passphrase (Kamailio needs it unencrypted)"
        ) from None
    except ValueError:
        raise TlsProblem(f"private key {key_path}: not a PEM private key") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, pub) != cert.public_key().public_bytes(enc, pub):
        raise TlsProblem(f"private key {key_path} does not belong to certificate {cert_path}")
    return info


def make_self_signed(
    cert_path: Path, key_path: Path, name: str, addresses: list[str], days: int = SELF_SIGNED_DAYS, now: float = 0.0
) -> CertInfo:
    """A self-signed certificate (P-256) for `name` and the node's addresses; the key written mode 0600 first."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.datetime.fromtimestamp(now or datetime.datetime.now().timestamp(), datetime.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(name)]
    for a in addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(a)))
        except ValueError:
            sans.append(x509.DNSName(a))
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "callmanager")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(minutes=5))
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return inspect(cert_path)


def ensure_certificate(
    cert_path: Path, key_path: Path, configured: bool, name: str, addresses: list[str], now: float
) -> tuple[CertInfo, bool]:
    """The pair Kamailio will serve, checked; (info, made) — `made`: a self-signed one was made now (none was
    configured, and there was none yet or it ends within RENEW_BEFORE_DAYS). A configured pair is never replaced."""
    if configured:
        return check_pair(cert_path, key_path), False
    if cert_path.exists() and key_path.exists():
        try:
            info = check_pair(cert_path, key_path)
            if info.not_after - now > RENEW_BEFORE_DAYS * 86400:
                return info, False
        except TlsProblem:
            pass  # ours, broken: made again
    return make_self_signed(cert_path, key_path, name, addresses, now=now), True
