"""Trust anchors (RFC 5914 TrustAnchorChoice: a Certificate, TBSCertificate or TrustAnchorInfo) held as
their DER, their extensions, and RFC 6010 content constraints: which TAMP messages an anchor may sign."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1_alt_modules import rfc5280, rfc5914, rfc6010

from mpki.asn1.cms import boolean, explicit, octet_string, oid, sequence, utf8_string
from mpki.asn1.der import tlv
from mpki.asn1.tamp.codes import SUBJECT_KEY_IDENTIFIER_EXT, StatusCode, TampDecodeError, decode_exact, der_of


@dataclass(frozen=True, slots=True)
class Extension:
    oid: str
    critical: bool
    value: bytes


@dataclass(frozen=True)
class TrustAnchor:
    """A TrustAnchorChoice (RFC 5914) held as its DER: a Certificate, [1] TBSCertificate or [2] TrustAnchorInfo."""

    der: bytes
    _parsed: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        choice = decode_exact(
            self.der, rfc5914.TrustAnchorChoice(), "TrustAnchorChoice", StatusCode.unsupportedTrustAnchorFormat
        )
        object.__setattr__(self, "_parsed", choice)

    @classmethod
    def from_certificate(cls, certificate_der: bytes) -> TrustAnchor:
        return cls(certificate_der)

    @classmethod
    def from_info(
        cls,
        public_key_info: bytes,
        key_id: bytes,
        title: str | None = None,
        extensions: tuple[Extension, ...] = (),
        cert_path: bytes | None = None,
    ) -> TrustAnchor:
        """A TrustAnchorInfo: a bare public key with its identifier, title, CertPathControls DER and extensions."""
        body = public_key_info + octet_string(key_id)
        if title is not None:
            body += utf8_string(title)
        if cert_path is not None:
            body += cert_path
        if extensions:
            body += explicit(1, encode_extensions(extensions))
        return cls(explicit(2, tlv(0x30, body)))

    @property
    def kind(self) -> str:
        """'certificate', 'tbsCert' or 'taInfo'."""
        return str(self._parsed.getName())

    @property
    def public_key_info(self) -> bytes:
        """The SubjectPublicKeyInfo DER."""
        inner = self._parsed.getComponent()
        if self.kind == "certificate":
            return der_of(inner["tbsCertificate"]["subjectPublicKeyInfo"])
        if self.kind == "tbsCert":
            return der_of(inner["subjectPublicKeyInfo"])
        return der_of(inner["pubKey"])

    @property
    def extensions(self) -> tuple[Extension, ...]:
        inner = self._parsed.getComponent()
        if self.kind == "certificate":
            exts = inner["tbsCertificate"]["extensions"]
        elif self.kind == "tbsCert":
            exts = inner["extensions"]
        else:
            exts = inner["exts"]
        return read_extensions(exts) if exts.isValue else ()

    def extension(self, extension_oid: str) -> Extension | None:
        for ext in self.extensions:
            if ext.oid == extension_oid:
                return ext
        return None

    @property
    def key_id(self) -> bytes:
        """TrustAnchorInfo.keyId, else the subjectKeyIdentifier extension, else the RFC 5280 method-1 hash."""
        if self.kind == "taInfo":
            return bytes(self._parsed.getComponent()["keyId"])
        ski = self.extension(SUBJECT_KEY_IDENTIFIER_EXT)
        if ski is not None:
            value, _ = decoder.decode(ski.value, asn1Spec=rfc5280.SubjectKeyIdentifier())
            return bytes(value)
        return key_identifier(self.public_key_info)

    @property
    def title(self) -> str | None:
        if self.kind != "taInfo":
            return None
        title = self._parsed.getComponent()["taTitle"]
        return str(title) if title.isValue else None

    @property
    def cert_path(self) -> bytes | None:
        """A TrustAnchorInfo's CertPathControls DER, if it has one."""
        if self.kind != "taInfo":
            return None
        controls = self._parsed.getComponent()["certPath"]
        return der_of(controls) if controls.isValue else None


def key_identifier(public_key_info: bytes) -> bytes:
    """RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value."""
    spki, _ = decoder.decode(public_key_info, asn1Spec=rfc5280.SubjectPublicKeyInfo())
    return hashlib.sha1(spki["subjectPublicKey"].asOctets()).digest()


def read_extensions(value: Any) -> tuple[Extension, ...]:
    """A decoded Extensions SEQUENCE as `Extension` values."""
    return tuple(Extension(str(e["extnID"]), bool(e["critical"]), bytes(e["extnValue"])) for e in value)


def encode_extensions(extensions: tuple[Extension, ...]) -> bytes:
    return sequence(
        *(sequence(oid(e.oid), *([boolean(True)] if e.critical else []), octet_string(e.value)) for e in extensions)
    )


def encode_content_constraints(content_types: tuple[str, ...]) -> bytes:
    """id-pe-cmsContentConstraints value (RFC 6010): the content types a trust anchor may sign."""
    return sequence(*(sequence(oid(ct)) for ct in content_types))


def decode_content_constraints(value: bytes) -> tuple[str, ...]:
    """The content types a trust anchor canSource; cannotSource entries are left out."""
    try:
        constraints, _ = decoder.decode(value, asn1Spec=rfc6010.CMSContentConstraints())
    except PyAsn1Error as exc:
        raise TampDecodeError(StatusCode.malformed, f"bad cmsContentConstraints: {exc}") from None
    return tuple(str(c["contentType"]) for c in constraints if int(c["canSource"]) == 0)
