"""Trust Anchor Management Protocol (RFC 5934) message contents, as typed values an operator fills in.

Each message dataclass encodes itself to the DER of its content (what a CMS SignedData encapsulates
under the message's id-ct-TAMP-* content type); `decode_message` reads one back with pyasn1-alt-modules'
`rfc5934` definitions. Trust anchors travel as their TrustAnchorChoice DER (RFC 5914), so a certificate,
a TBSCertificate or a TrustAnchorInfo round-trips octet for octet.

Only TAMP version 2 is spoken; DEFAULT values are left out of the encoding, as DER requires. An empty
optional community list is encoded as absent (pyasn1 drops empty SEQUENCE OFs, so it would not round-trip),
and reads back as None.
"""

# ruff: noqa: N815 - StatusCode members keep the RFC's own mixedCase names.
from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1_alt_modules import rfc5280, rfc5914, rfc5934, rfc6010

from mpki.asn1.cms import (
    boolean,
    enumerated,
    explicit,
    ia5_string,
    implicit,
    integer,
    null,
    octet_string,
    oid,
    sequence,
    untag,
    utf8_string,
)
from mpki.asn1.der import read_tlv, tlv
from mpki.domain import InvalidRequest

_TAMP_ARC = "2.16.840.1.101.2.1.2.77"
CONTINGENCY_KEY_ATTR = "2.16.840.1.101.2.1.5.63"
WRAPPED_APEX_CONTIN_KEY_EXT = "1.3.6.1.5.5.7.1.20"
CMS_CONTENT_CONSTRAINTS_EXT = "1.3.6.1.5.5.7.1.18"
SUBJECT_KEY_IDENTIFIER_EXT = "2.5.29.14"
ANY_CONTENT_TYPE = "1.2.840.113549.1.9.16.1.0"


class ContentType(enum.StrEnum):
    """The id-ct-TAMP-* content types (RFC 5934 section 4)."""

    STATUS_QUERY = f"{_TAMP_ARC}.1"
    STATUS_RESPONSE = f"{_TAMP_ARC}.2"
    UPDATE = f"{_TAMP_ARC}.3"
    UPDATE_CONFIRM = f"{_TAMP_ARC}.4"
    APEX_UPDATE = f"{_TAMP_ARC}.5"
    APEX_UPDATE_CONFIRM = f"{_TAMP_ARC}.6"
    COMMUNITY_UPDATE = f"{_TAMP_ARC}.7"
    COMMUNITY_UPDATE_CONFIRM = f"{_TAMP_ARC}.8"
    ERROR = f"{_TAMP_ARC}.9"
    SEQ_NUM_ADJUST = f"{_TAMP_ARC}.10"
    SEQ_NUM_ADJUST_CONFIRM = f"{_TAMP_ARC}.11"


class StatusCode(enum.IntEnum):
    """RFC 5934 StatusCode, members named as in the RFC so that they can be searched for there;
    a test checks them against rfc5934.StatusCode's named values."""

    success = 0
    decodeFailure = 1
    badContentInfo = 2
    badSignedData = 3
    badEncapContent = 4
    badCertificate = 5
    badSignerInfo = 6
    badSignedAttrs = 7
    badUnsignedAttrs = 8
    missingContent = 9
    noTrustAnchor = 10
    notAuthorized = 11
    badDigestAlgorithm = 12
    badSignatureAlgorithm = 13
    unsupportedKeySize = 14
    unsupportedParameters = 15
    signatureFailure = 16
    insufficientMemory = 17
    unsupportedTAMPMsgType = 18
    apexTAMPAnchor = 19
    improperTAAddition = 20
    seqNumFailure = 21
    contingencyPublicKeyDecrypt = 22
    incorrectTarget = 23
    communityUpdateFailed = 24
    trustAnchorNotFound = 25
    unsupportedTAAlgorithm = 26
    unsupportedTAKeySize = 27
    unsupportedContinPubKeyDecryptAlg = 28
    missingSignature = 29
    resourcesBusy = 30
    versionNumberMismatch = 31
    missingPolicySet = 32
    revokedCertificate = 33
    unsupportedTrustAnchorFormat = 34
    improperTAChange = 35
    malformed = 36
    cmsError = 37
    unsupportedTargetIdentifier = 38
    other = 127


class TampDecodeError(InvalidRequest):
    """A TAMP content does not decode; `status` is the code to answer with."""

    def __init__(self, status: StatusCode, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- targets and message references ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SerialBlock:
    """An inclusive range of hardware serial numbers (compared as octet strings of equal length)."""

    low: bytes
    high: bytes


SerialEntry = None | bytes | SerialBlock  # None: all serials of the type


@dataclass(frozen=True, slots=True)
class HardwareModules:
    hw_type: str
    serials: tuple[SerialEntry, ...]


@dataclass(frozen=True, slots=True)
class AllModules:
    """Every trust anchor store that receives the message."""


@dataclass(frozen=True, slots=True)
class CommunityTarget:
    communities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HardwareTarget:
    modules: tuple[HardwareModules, ...]


@dataclass(frozen=True, slots=True)
class UriTarget:
    uri: str


@dataclass(frozen=True, slots=True)
class OtherNameTarget:
    """AnotherName DER (untagged), kept opaque."""

    der: bytes


Target = AllModules | CommunityTarget | HardwareTarget | UriTarget | OtherNameTarget


@dataclass(frozen=True, slots=True)
class MsgRef:
    """TAMPMsgRef: whom a message is for, and the signer's sequence number (its anti-replay counter)."""

    target: Target
    seq_num: int


@dataclass(frozen=True, slots=True)
class SequenceNumber:
    """TAMPSequenceNumber: the last sequence number a store accepted from the signer with `key_id`."""

    key_id: bytes
    seq_num: int


# --- trust anchors --------------------------------------------------------------------------------


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
        try:
            choice, rest = decoder.decode(self.der, asn1Spec=rfc5914.TrustAnchorChoice())
        except PyAsn1Error as exc:
            raise TampDecodeError(StatusCode.unsupportedTrustAnchorFormat, f"not a TrustAnchorChoice: {exc}") from None
        if rest:
            raise TampDecodeError(StatusCode.unsupportedTrustAnchorFormat, "trailing bytes after the trust anchor")
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
            return bytes(encoder.encode(inner["tbsCertificate"]["subjectPublicKeyInfo"]))
        if self.kind == "tbsCert":
            return bytes(encoder.encode(inner["subjectPublicKeyInfo"]))
        return bytes(encoder.encode(inner["pubKey"]))

    @property
    def extensions(self) -> tuple[Extension, ...]:
        inner = self._parsed.getComponent()
        if self.kind == "certificate":
            exts = inner["tbsCertificate"]["extensions"]
        elif self.kind == "tbsCert":
            exts = inner["extensions"]
        else:
            exts = inner["exts"]
        if not exts.isValue:
            return ()
        return tuple(Extension(str(e["extnID"]), bool(e["critical"]), bytes(e["extnValue"])) for e in exts)

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
        return bytes(encoder.encode(controls)) if controls.isValue else None


def key_identifier(public_key_info: bytes) -> bytes:
    """RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value."""
    spki, _ = decoder.decode(public_key_info, asn1Spec=rfc5280.SubjectPublicKeyInfo())
    return hashlib.sha1(spki["subjectPublicKey"].asOctets()).digest()


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


@dataclass(frozen=True, slots=True)
class ApexContingencyKey:
    """id-pe-wrappedApexContinKey: the apex's contingency public key (an SPKI), encrypted with `wrap_algorithm`."""

    wrap_algorithm: str
    wrapped: bytes

    def encode(self) -> bytes:
        return sequence(sequence(oid(self.wrap_algorithm)), octet_string(self.wrapped))

    @classmethod
    def decode(cls, value: bytes) -> ApexContingencyKey:
        try:
            parsed, rest = decoder.decode(value, asn1Spec=rfc5934.ApexContingencyKey())
        except PyAsn1Error as exc:
            raise TampDecodeError(StatusCode.contingencyPublicKeyDecrypt, f"bad wrappedApexContinKey: {exc}") from None
        if rest:
            raise TampDecodeError(StatusCode.contingencyPublicKeyDecrypt, "trailing bytes in wrappedApexContinKey")
        return cls(str(parsed["wrapAlgorithm"]["algorithm"]), bytes(parsed["wrappedContinPubKey"]))


def encode_plaintext_symmetric_key(key: bytes) -> bytes:
    """The id-aa-TAMP-contingencyPublicKeyDecryptKey attribute value."""
    return octet_string(key)


def decode_plaintext_symmetric_key(value: bytes) -> bytes:
    try:
        key, rest = decoder.decode(value, asn1Spec=rfc5934.PlaintextSymmetricKey())
    except PyAsn1Error:
        raise TampDecodeError(StatusCode.badUnsignedAttrs, "contingency decrypt key is not an OCTET STRING") from None
    if rest:
        raise TampDecodeError(StatusCode.badUnsignedAttrs, "trailing bytes in the contingency decrypt key")
    return bytes(key)


# --- updates inside a TAMPUpdate ------------------------------------------------------------------


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
                der = bytes(encoder.encode(inner[name]))
                out[name] = der if name == "serialNumber" else _strip_context_tag(der, name)
        return out

    def _parsed(self) -> Any:
        return _decode(self.der, rfc5934.TrustAnchorChangeInfoChoice(), "TrustAnchorChangeInfoChoice")

    @property
    def kind(self) -> str:
        """'tbsCertChange' or 'taChange'."""
        return str(self._parsed().getName())

    @property
    def public_key_info(self) -> bytes:
        inner = self._parsed().getComponent()
        name = "subjectPublicKeyInfo" if self.kind == "tbsCertChange" else "pubKey"
        der = bytes(encoder.encode(inner[name]))
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
        return tuple(Extension(str(e["extnID"]), bool(e["critical"]), bytes(e["extnValue"])) for e in inner["exts"])


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
                parts.append(bytes(encoder.encode(tbs[name])))
        elif name in fields:
            parts.append(fields[name])
        elif tbs[name].isValue and not (name == "version" and int(tbs[name]) == 0):
            parts.append(bytes(encoder.encode(tbs[name])))
    return TrustAnchor(explicit(1, sequence(*parts)))


# --- the messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusQuery:
    content_type: ClassVar[ContentType] = ContentType.STATUS_QUERY
    query: MsgRef
    terse: bool = False

    def encode(self) -> bytes:
        return sequence(*_terse(self.terse), _msg_ref(self.query))


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """A store's answer: verbose lists its trust anchors, terse only their key identifiers."""

    content_type: ClassVar[ContentType] = ContentType.STATUS_RESPONSE
    query: MsgRef
    terse: bool = False
    trust_anchors: tuple[TrustAnchor, ...] = ()
    ta_key_ids: tuple[bytes, ...] = ()
    contin_pub_key_decrypt_alg: str | None = None
    communities: tuple[str, ...] | None = None
    seq_numbers: tuple[SequenceNumber, ...] | None = None
    uses_apex: bool = True

    def encode(self) -> bytes:
        if self.terse:
            body = sequence(*(octet_string(k) for k in self.ta_key_ids))
            if self.communities:
                body += _communities(self.communities)
            response = tlv(0xA0, body)
        else:
            body = _anchor_list(self.trust_anchors)
            if self.contin_pub_key_decrypt_alg is not None:
                body += implicit(0, sequence(oid(self.contin_pub_key_decrypt_alg)))
            if self.communities:
                body += implicit(1, _communities(self.communities))
            if self.seq_numbers is not None:
                body += implicit(2, _seq_numbers(self.seq_numbers))
            response = tlv(0xA1, body)
        return sequence(_msg_ref(self.query), response, *([] if self.uses_apex else [boolean(False)]))


@dataclass(frozen=True, slots=True)
class TampUpdate:
    content_type: ClassVar[ContentType] = ContentType.UPDATE
    msg_ref: MsgRef
    updates: tuple[Update, ...]
    terse: bool = False
    seq_numbers: tuple[SequenceNumber, ...] | None = None

    def encode(self) -> bytes:
        tail = [] if self.seq_numbers is None else [implicit(2, _seq_numbers(self.seq_numbers))]
        return sequence(
            *_terse(self.terse),
            _msg_ref(self.msg_ref),
            sequence(*(_update(u) for u in self.updates)),
            *tail,
        )


@dataclass(frozen=True, slots=True)
class TampUpdateConfirm:
    """One status per update, in order; verbose also lists the store's trust anchors afterwards."""

    content_type: ClassVar[ContentType] = ContentType.UPDATE_CONFIRM
    update: MsgRef
    statuses: tuple[StatusCode, ...]
    terse: bool = False
    trust_anchors: tuple[TrustAnchor, ...] = ()
    seq_numbers: tuple[SequenceNumber, ...] | None = None
    uses_apex: bool = True

    def encode(self) -> bytes:
        codes = sequence(*(enumerated(s) for s in self.statuses))
        if self.terse:
            confirm = implicit(0, codes)
        else:
            body = codes + _anchor_list(self.trust_anchors)
            if self.seq_numbers is not None:
                body += _seq_numbers(self.seq_numbers)
            if not self.uses_apex:
                body += boolean(False)
            confirm = tlv(0xA1, body)
        return sequence(_msg_ref(self.update), confirm)


@dataclass(frozen=True, slots=True)
class ApexUpdate:
    """Replace the apex trust anchor; optionally clear every other anchor and the communities."""

    content_type: ClassVar[ContentType] = ContentType.APEX_UPDATE
    msg_ref: MsgRef
    apex: TrustAnchor
    clear_trust_anchors: bool = False
    clear_communities: bool = False
    seq_number: int | None = None
    terse: bool = False

    def encode(self) -> bytes:
        return sequence(
            *_terse(self.terse),
            _msg_ref(self.msg_ref),
            boolean(self.clear_trust_anchors),
            boolean(self.clear_communities),
            *([] if self.seq_number is None else [integer(self.seq_number)]),
            self.apex.der,
        )


@dataclass(frozen=True, slots=True)
class ApexUpdateConfirm:
    content_type: ClassVar[ContentType] = ContentType.APEX_UPDATE_CONFIRM
    apex_replace: MsgRef
    status: StatusCode
    terse: bool = False
    trust_anchors: tuple[TrustAnchor, ...] = ()
    communities: tuple[str, ...] | None = None
    seq_numbers: tuple[SequenceNumber, ...] | None = None

    def encode(self) -> bytes:
        if self.terse:
            confirm = implicit(0, enumerated(self.status))
        else:
            body = enumerated(self.status) + _anchor_list(self.trust_anchors)
            if self.communities:
                body += implicit(0, _communities(self.communities))
            if self.seq_numbers is not None:
                body += implicit(1, _seq_numbers(self.seq_numbers))
            confirm = tlv(0xA1, body)
        return sequence(_msg_ref(self.apex_replace), confirm)


@dataclass(frozen=True, slots=True)
class CommunityUpdate:
    content_type: ClassVar[ContentType] = ContentType.COMMUNITY_UPDATE
    msg_ref: MsgRef
    remove: tuple[str, ...] | None = None
    add: tuple[str, ...] | None = None
    terse: bool = False

    def encode(self) -> bytes:
        updates = b""
        if self.remove:
            updates += implicit(1, _communities(self.remove))
        if self.add:
            updates += implicit(2, _communities(self.add))
        return sequence(*_terse(self.terse), _msg_ref(self.msg_ref), tlv(0x30, updates))


@dataclass(frozen=True, slots=True)
class CommunityUpdateConfirm:
    content_type: ClassVar[ContentType] = ContentType.COMMUNITY_UPDATE_CONFIRM
    update: MsgRef
    status: StatusCode
    terse: bool = False
    communities: tuple[str, ...] | None = None

    def encode(self) -> bytes:
        if self.terse:
            confirm = implicit(0, enumerated(self.status))
        else:
            body = enumerated(self.status)
            if self.communities:
                body += _communities(self.communities)
            confirm = tlv(0xA1, body)
        return sequence(_msg_ref(self.update), confirm)


@dataclass(frozen=True, slots=True)
class SequenceNumberAdjust:
    """Tell a store the signer's current sequence number, so that older messages are refused."""

    content_type: ClassVar[ContentType] = ContentType.SEQ_NUM_ADJUST
    msg_ref: MsgRef

    def encode(self) -> bytes:
        return sequence(_msg_ref(self.msg_ref))


@dataclass(frozen=True, slots=True)
class SequenceNumberAdjustConfirm:
    content_type: ClassVar[ContentType] = ContentType.SEQ_NUM_ADJUST_CONFIRM
    adjust: MsgRef
    status: StatusCode

    def encode(self) -> bytes:
        return sequence(_msg_ref(self.adjust), enumerated(self.status))


@dataclass(frozen=True, slots=True)
class TampError:
    """The answer to a message that could not be processed at all; `msg_ref` when it could be read."""

    content_type: ClassVar[ContentType] = ContentType.ERROR
    msg_type: str
    status: StatusCode
    msg_ref: MsgRef | None = None

    def encode(self) -> bytes:
        return sequence(
            oid(self.msg_type), enumerated(self.status), *([] if self.msg_ref is None else [_msg_ref(self.msg_ref)])
        )


Message = (
    StatusQuery
    | StatusResponse
    | TampUpdate
    | TampUpdateConfirm
    | ApexUpdate
    | ApexUpdateConfirm
    | CommunityUpdate
    | CommunityUpdateConfirm
    | SequenceNumberAdjust
    | SequenceNumberAdjustConfirm
    | TampError
)


# --- encoding helpers -----------------------------------------------------------------------------


def _terse(terse: bool) -> list[bytes]:
    """[1] TerseOrVerbose DEFAULT verbose: present only when terse."""
    return [implicit(1, enumerated(1))] if terse else []


def _communities(communities: tuple[str, ...]) -> bytes:
    return sequence(*(oid(c) for c in communities))


def _seq_numbers(numbers: tuple[SequenceNumber, ...]) -> bytes:
    return sequence(*(sequence(octet_string(n.key_id), integer(n.seq_num)) for n in numbers))


def _anchor_list(anchors: tuple[TrustAnchor, ...]) -> bytes:
    """TrustAnchorChoiceList is SIZE (1..MAX): a verbose answer always lists at least the apex."""
    if not anchors:
        raise InvalidRequest("a verbose TAMP answer lists at least one trust anchor")
    return sequence(*(a.der for a in anchors))


def _serial_entry(entry: SerialEntry) -> bytes:
    if entry is None:
        return null()
    if isinstance(entry, bytes):
        return octet_string(entry)
    return sequence(octet_string(entry.low), octet_string(entry.high))


def _target(target: Target) -> bytes:
    if isinstance(target, AllModules):
        return implicit(3, null())
    if isinstance(target, CommunityTarget):
        return implicit(2, _communities(target.communities))
    if isinstance(target, HardwareTarget):
        modules = (sequence(oid(m.hw_type), sequence(*(_serial_entry(s) for s in m.serials))) for m in target.modules)
        return implicit(1, sequence(*modules))
    if isinstance(target, UriTarget):
        return implicit(4, ia5_string(target.uri))
    return implicit(5, target.der)


def _msg_ref(ref: MsgRef) -> bytes:
    return sequence(_target(ref.target), integer(ref.seq_num))


def _update(update: Update) -> bytes:
    if isinstance(update, AddAnchor):
        return explicit(1, update.anchor.der)
    if isinstance(update, RemoveAnchor):
        return implicit(2, update.public_key_info)
    return explicit(3, update.der)


# --- decoding -------------------------------------------------------------------------------------


_SPECS: dict[str, Any] = {
    ContentType.STATUS_QUERY: rfc5934.TAMPStatusQuery,
    ContentType.STATUS_RESPONSE: rfc5934.TAMPStatusResponse,
    ContentType.UPDATE: rfc5934.TAMPUpdate,
    ContentType.UPDATE_CONFIRM: rfc5934.TAMPUpdateConfirm,
    ContentType.APEX_UPDATE: rfc5934.TAMPApexUpdate,
    ContentType.APEX_UPDATE_CONFIRM: rfc5934.TAMPApexUpdateConfirm,
    ContentType.COMMUNITY_UPDATE: rfc5934.TAMPCommunityUpdate,
    ContentType.COMMUNITY_UPDATE_CONFIRM: rfc5934.TAMPCommunityUpdateConfirm,
    ContentType.SEQ_NUM_ADJUST: rfc5934.SequenceNumberAdjust,
    ContentType.SEQ_NUM_ADJUST_CONFIRM: rfc5934.SequenceNumberAdjustConfirm,
    ContentType.ERROR: rfc5934.TAMPError,
}


def _decode(der: bytes, spec: Any, what: str) -> Any:
    try:
        value, rest = decoder.decode(der, asn1Spec=spec)
    except PyAsn1Error as exc:
        raise TampDecodeError(StatusCode.decodeFailure, f"{what} does not decode: {exc}") from None
    if rest:
        raise TampDecodeError(StatusCode.decodeFailure, f"trailing bytes after the {what}")
    return value


def decode_message(content_type: str, der: bytes) -> Message:
    """Decode the content of one TAMP message of `content_type`; it must re-encode to the same DER."""
    if content_type not in _SPECS:
        raise TampDecodeError(StatusCode.unsupportedTAMPMsgType, f"{content_type} is not a TAMP message type")
    value = _decode(der, _SPECS[content_type](), "TAMP message")
    try:
        canonical = encoder.encode(value)
    except PyAsn1Error as exc:
        raise TampDecodeError(StatusCode.malformed, f"the TAMP message is malformed: {exc}") from None
    if canonical != der:
        raise TampDecodeError(StatusCode.decodeFailure, "the TAMP message is not DER")
    if "version" in value and value["version"].isValue and int(value["version"]) != 2:
        raise TampDecodeError(StatusCode.versionNumberMismatch, f"TAMP version {int(value['version'])} is not 2")
    try:
        return _READERS[ContentType(content_type)](value)
    except (PyAsn1Error, ValueError) as exc:
        raise TampDecodeError(StatusCode.malformed, f"the TAMP message is malformed: {exc}") from None


def _read_target(value: Any) -> Target:
    name = value.getName()
    inner = value.getComponent()
    if name == "allModules":
        return AllModules()
    if name == "communities":
        return CommunityTarget(tuple(str(c) for c in inner))
    if name == "hwModules":
        modules = []
        for module in inner:
            serials: list[SerialEntry] = []
            for entry in module["hwSerialEntries"]:
                kind = entry.getName()
                if kind == "all":
                    serials.append(None)
                elif kind == "single":
                    serials.append(bytes(entry["single"]))
                else:
                    serials.append(SerialBlock(bytes(entry["block"]["low"]), bytes(entry["block"]["high"])))
            modules.append(HardwareModules(str(module["hwType"]), tuple(serials)))
        return HardwareTarget(tuple(modules))
    if name == "uri":
        return UriTarget(str(inner))
    return OtherNameTarget(untag(bytes(encoder.encode(inner)), 0x30))


def _read_ref(value: Any) -> MsgRef:
    return MsgRef(_read_target(value["target"]), int(value["seqNum"]))


def _read_terse(value: Any) -> bool:
    return bool(value["terse"].isValue and int(value["terse"]) == 1)


def _read_anchors(value: Any) -> tuple[TrustAnchor, ...]:
    return tuple(TrustAnchor(bytes(encoder.encode(choice.getComponent()))) for choice in value)


def _read_seq_numbers(value: Any) -> tuple[SequenceNumber, ...] | None:
    if not value.isValue:
        return None
    return tuple(SequenceNumber(bytes(n["keyId"]), int(n["seqNumber"])) for n in value)


def _read_communities(value: Any) -> tuple[str, ...] | None:
    if not value.isValue:
        return None
    return tuple(str(c) for c in value)


def _read_status_query(v: Any) -> Message:
    return StatusQuery(_read_ref(v["query"]), _read_terse(v))


def _read_status_response(v: Any) -> Message:
    response = v["response"]
    inner = response.getComponent()
    uses_apex = bool(v["usesApex"]) if v["usesApex"].isValue else True
    if response.getName() == "terseResponse":
        return StatusResponse(
            _read_ref(v["query"]),
            terse=True,
            ta_key_ids=tuple(bytes(k) for k in inner["taKeyIds"]),
            communities=_read_communities(inner["communities"]),
            uses_apex=uses_apex,
        )
    alg = inner["continPubKeyDecryptAlg"]
    return StatusResponse(
        _read_ref(v["query"]),
        trust_anchors=_read_anchors(inner["taInfo"]),
        contin_pub_key_decrypt_alg=str(alg["algorithm"]) if alg.isValue else None,
        communities=_read_communities(inner["communities"]),
        seq_numbers=_read_seq_numbers(inner["tampSeqNumbers"]),
        uses_apex=uses_apex,
    )


def _read_update(v: Any) -> Message:
    updates: list[Update] = []
    for item in v["updates"]:
        name = item.getName()
        inner = item.getComponent()
        if name == "add":
            updates.append(AddAnchor(TrustAnchor(bytes(encoder.encode(inner.getComponent())))))
        elif name == "remove":
            updates.append(RemoveAnchor(untag(bytes(encoder.encode(inner)), 0x30)))
        else:
            updates.append(ChangeAnchor(_change_der(inner)))
    return TampUpdate(_read_ref(v["msgRef"]), tuple(updates), _read_terse(v), _read_seq_numbers(v["tampSeqNumbers"]))


def _change_der(choice: Any) -> bytes:
    """The TrustAnchorChangeInfoChoice DER: its chosen alternative's tagged encoding."""
    return bytes(encoder.encode(choice.getComponent()))


def _read_update_confirm(v: Any) -> Message:
    confirm = v["confirm"]
    inner = confirm.getComponent()
    if confirm.getName() == "terseConfirm":
        return TampUpdateConfirm(_read_ref(v["update"]), tuple(StatusCode(int(s)) for s in inner), terse=True)
    return TampUpdateConfirm(
        _read_ref(v["update"]),
        tuple(StatusCode(int(s)) for s in inner["status"]),
        trust_anchors=_read_anchors(inner["taInfo"]),
        seq_numbers=_read_seq_numbers(inner["tampSeqNumbers"]),
        uses_apex=bool(inner["usesApex"]) if inner["usesApex"].isValue else True,
    )


def _read_apex_update(v: Any) -> Message:
    return ApexUpdate(
        _read_ref(v["msgRef"]),
        apex=TrustAnchor(bytes(encoder.encode(v["apexTA"]))),
        clear_trust_anchors=bool(v["clearTrustAnchors"]),
        clear_communities=bool(v["clearCommunities"]),
        seq_number=int(v["seqNumber"]) if v["seqNumber"].isValue else None,
        terse=_read_terse(v),
    )


def _read_apex_update_confirm(v: Any) -> Message:
    confirm = v["apexConfirm"]
    inner = confirm.getComponent()
    if confirm.getName() == "terseApexConfirm":
        return ApexUpdateConfirm(_read_ref(v["apexReplace"]), StatusCode(int(inner)), terse=True)
    return ApexUpdateConfirm(
        _read_ref(v["apexReplace"]),
        StatusCode(int(inner["status"])),
        trust_anchors=_read_anchors(inner["taInfo"]),
        communities=_read_communities(inner["communities"]),
        seq_numbers=_read_seq_numbers(inner["tampSeqNumbers"]),
    )


def _read_community_update(v: Any) -> Message:
    updates = v["updates"]
    return CommunityUpdate(
        _read_ref(v["msgRef"]),
        remove=_read_communities(updates["remove"]),
        add=_read_communities(updates["add"]),
        terse=_read_terse(v),
    )


def _read_community_update_confirm(v: Any) -> Message:
    confirm = v["commConfirm"]
    inner = confirm.getComponent()
    if confirm.getName() == "terseCommConfirm":
        return CommunityUpdateConfirm(_read_ref(v["update"]), StatusCode(int(inner)), terse=True)
    return CommunityUpdateConfirm(
        _read_ref(v["update"]), StatusCode(int(inner["status"])), communities=_read_communities(inner["communities"])
    )


def _read_seq_num_adjust(v: Any) -> Message:
    return SequenceNumberAdjust(_read_ref(v["msgRef"]))


def _read_seq_num_adjust_confirm(v: Any) -> Message:
    return SequenceNumberAdjustConfirm(_read_ref(v["adjust"]), StatusCode(int(v["status"])))


def _read_error(v: Any) -> Message:
    ref = _read_ref(v["msgRef"]) if v["msgRef"].isValue else None
    return TampError(str(v["msgType"]), StatusCode(int(v["status"])), ref)


_READERS: dict[ContentType, Callable[[Any], Message]] = {
    ContentType.STATUS_QUERY: _read_status_query,
    ContentType.STATUS_RESPONSE: _read_status_response,
    ContentType.UPDATE: _read_update,
    ContentType.UPDATE_CONFIRM: _read_update_confirm,
    ContentType.APEX_UPDATE: _read_apex_update,
    ContentType.APEX_UPDATE_CONFIRM: _read_apex_update_confirm,
    ContentType.COMMUNITY_UPDATE: _read_community_update,
    ContentType.COMMUNITY_UPDATE_CONFIRM: _read_community_update_confirm,
    ContentType.SEQ_NUM_ADJUST: _read_seq_num_adjust,
    ContentType.SEQ_NUM_ADJUST_CONFIRM: _read_seq_num_adjust_confirm,
    ContentType.ERROR: _read_error,
}
