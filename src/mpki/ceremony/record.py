"""The ceremony record: every step with its time, actor, inputs and outputs, signed by a CA key.

Never a secret in it: key ids, public-key and certificate fingerprints, share holders, not shares.
The signature covers the canonical JSON of everything but the signature itself, so changing any step,
reordering steps or swapping the signer certificate breaks it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.domain import InvalidRequest, utcnow

FORMAT = "mpki-ceremony-record-1"


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class RecordBuilder:
    ceremony: str
    environment: str
    ceremony_file_sha256: str
    people: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)

    def step(self, name: str, actor: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        entry = {
            "n": len(self.steps) + 1,
            "step": name,
            "at": utcnow().isoformat(),
            "actor": actor,
            "inputs": inputs,
            "outputs": outputs,
        }
        self.steps.append(entry)
        return entry

    def sign(self, signer_name: str, certificate: x509.Certificate, key: CertificateIssuerPrivateKeyTypes) -> bytes:
        body = {
            "format": FORMAT,
            "ceremony": self.ceremony,
            "environment": self.environment,
            "ceremony_file_sha256": self.ceremony_file_sha256,
            "people": self.people,
            "steps": self.steps,
            "signer": {
                "ca": signer_name,
                "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
            },
        }
        signature = _sign(key, canonical(body))
        body["signature"] = {"algorithm": "sha256", "value": base64.b64encode(signature).decode()}
        return json.dumps(body, indent=2, ensure_ascii=False).encode() + b"\n"


def _sign(key: CertificateIssuerPrivateKeyTypes, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise InvalidRequest("the record signer must be an EC or RSA key")


@dataclass(frozen=True, slots=True)
class VerifiedRecord:
    ceremony: str
    environment: str
    signer: str
    signer_fingerprint: str
    steps: int
    signed_at: dt.datetime | None


def verify_record(data: bytes) -> VerifiedRecord:
    """Check the signature and that the signer's certificate is the one the ceremony itself produced."""
    try:
        record = json.loads(data)
        signature = base64.b64decode(record.pop("signature")["value"])
        signer = record["signer"]
        certificate = x509.load_pem_x509_certificate(signer["certificate"].encode())
        steps = record["steps"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRequest("not an mpki ceremony record (or its structure was altered)") from None
    if record.get("format") != FORMAT:
        raise InvalidRequest(f"unknown ceremony record format {record.get('format')!r}")
    public = certificate.public_key()
    body = canonical(record)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise InvalidRequest("the record signer's key type is not supported")
    except InvalidSignature:
        raise InvalidRequest("the ceremony record's signature does not verify: it was altered") from None
    fingerprint = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    produced = {
        step["outputs"].get("certificate_sha256")
        for step in steps
        if step.get("step") == "ca.certificate_signed" and step["outputs"].get("ca") == signer["ca"]
    }
    if fingerprint not in produced:
        raise InvalidRequest("the record is signed by a certificate the ceremony did not produce")
    last = steps[-1]["at"] if steps else None
    return VerifiedRecord(
        ceremony=record["ceremony"],
        environment=record["environment"],
        signer=signer["ca"],
        signer_fingerprint=fingerprint,
        steps=len(steps),
        signed_at=dt.datetime.fromisoformat(last) if last else None,
    )
