"""The changes a TAMPUpdate carries (RFC 5934 section 4.3): add a trust anchor, remove one, or change one in
place (taChange for a TrustAnchorInfo, tbsCertChange for a TBSCertificate), and applying a tbsCertChange."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyasn1_alt_modules import rfc5934

from mpki.asn1.cms import explicit, implicit, octet_string, sequence, untag, utf8_string
from mpki.asn1.der import read_tlv, tlv
from mpki.asn1.tamp.anchors import Extension, TrustAnchor, encode_extensions, read_extensions
from mpki.asn1.tamp.codes import decode_exact, der_of
from mpki.domain import InvalidRequest


@dataclass(frozen=True, slots=True)
class AddAnchor:
    anchor: TrustAnchor


@dataclass(frozen=True, slots=True)
class RemoveAnchor:
    """Names the trust anchor to remove by its SubjectPublicKeyInfo DER."""

    public_key_info: bytes


@dataclass(frozen=True, slots=True)
class ChangeAnchor:
    """A TrustAnchorChangeInfoChoice held as its DER ([0] tbsCertChange or [1] taChange)."""

    der: bytes

    @classmethod
    def ta_change(
        cls,
        public_key_info: bytes,
        key_id: bytes | None = None,
        title: str | None = None,
        extensions: tuple[Extension, ...] = (),
    ) -> ChangeAnchor:
        """Change a TrustAnchorInfo anchor's key id, title or extensions; the key names the anchor."""
        body = public_key_info
        if key_id is not None:
            body += octet_string(key_id)
        if title is not None:
            body += utf8_string(title)
        if extensions:
            body += implicit(1, encode_extensions(extensions))
        return cls(tlv(0xA1, body))

    @classmethod
    def tbs_cert_change(cls, public_key_info: bytes, **fields: bytes) -> ChangeAnchor:
        """Change fields of a TBSCertificate anchor, each given as its untagged DER: serialNumber,
        signature, issuer, validity, subject, exts (an Extensions SEQUENCE); the key names the anchor."""
        unknown = set(fields) - set(TBS_CHANGE_FIELDS)
        if unknown:
            raise InvalidRequest(f"not TBSCertificate fields a change may carry: {sorted(unknown)}")
        body = fields.get("serialNumber", b"")
        wrap = {"signature": implicit, "issuer": explicit, "validity": implicit, "subject": explicit}
        for number, name in enumerate(("signature", "issuer", "validity", "subject")):
            if name in fields:
                body += wrap[name](number, fields[name])
        body += implicit(4, public_key_info)
        if "exts" in fields:
            body += explicit(5, fields["exts"])
        return cls(tlv(0xA0, body))

    def tbs_fields(self) -> dict[str, bytes]:
        """A tbsCertChange's fields that are present, each as its untagged DER (the key excluded)."""
        if self.kind != "tbsCertChange":
            return {}
        inner = self._parsed().getComponent()
        out: dict[str, bytes] = {}
        for name in TBS_CHANGE_FIELDS:
            if inner[name].isValue:
                der = der_of(inner[name])
                out[name] = der if name == "serialNumber" else _strip_context_tag(der, name)
        return out

    def _parsed(self) -> Any:
        return decode_exact(self.der, rfc5934.TrustAnchorChangeInfoChoice(), "TrustAnchorChangeInfoChoice")

    @property
    def kind(self) -> str:
        """'tbsCertChange' or 'taChange'."""
        return str(self._parsed().getName())

    @property
    def public_key_info(self) -> bytes:
        inner = self._parsed().getComponent()
        name = "subjectPublicKeyInfo" if self.kind == "tbsCertChange" else "pubKey"
        der = der_of(inner[name])
        return untag(der, 0x30)

    @property
    def key_id(self) -> bytes | None:
        inner = self._parsed().getComponent()
        if self.kind == "taChange" and inner["keyId"].isValue:
            return bytes(inner["keyId"])
        return None

    @property
    def title(self) -> str | None:
        inner = self._parsed().getComponent()
        if self.kind == "taChange" and inner["taTitle"].isValue:
            return str(inner["taTitle"])
        return None

    @property
    def extensions(self) -> tuple[Extension, ...] | None:
        inner = self._parsed().getComponent()
        if self.kind != "taChange" or not inner["exts"].isValue:
            return None
        return read_extensions(inner["exts"])


Update = AddAnchor | RemoveAnchor | ChangeAnchor

TBS_CHANGE_FIELDS = ("serialNumber", "signature", "issuer", "validity", "subject", "exts")
_EXPLICIT_TBS_CHANGE = frozenset({"issuer", "subject", "exts"})  # Name is a CHOICE: its tag is explicit


def _strip_context_tag(der: bytes, name: str) -> bytes:
    if name in _EXPLICIT_TBS_CHANGE:
        _, inner, _ = read_tlv(der, 0, name)
        return inner
    return untag(der, 0x30)  # AlgorithmIdentifier and Validity are SEQUENCEs


def changed_tbs_certificate(anchor: TrustAnchor, fields: dict[str, bytes]) -> TrustAnchor:
    """A TBSCertificate anchor with `fields` (as from `ChangeAnchor.tbs_fields`) put in place of its own."""
    if anchor.kind != "tbsCert":
        raise InvalidRequest("only a TBSCertificate anchor takes a tbsCertChange")
    tbs = anchor._parsed.getComponent()
    parts: list[bytes] = []
    for name in tbs:  # the components in order, as encoded inside the TBSCertificate
        if name == "extensions":
            if "exts" in fields:
                parts.append(explicit(3, fields["exts"]))
            elif tbs[name].isValue:
                parts.append(der_of(tbs[name]))
        elif name in fields:
            parts.append(fields[name])
        elif tbs[name].isValue and not (name == "version" and int(tbs[name]) == 0):
            parts.append(der_of(tbs[name]))
    return TrustAnchor(explicit(1, sequence(*parts)))
