"""The eleven TAMP messages (RFC 5934 section 4) as typed values an operator fills in; `encode()` gives the
DER content a CMS SignedData encapsulates under the message's `content_type`.

Only TAMP version 2 is spoken; DEFAULT values are left out of the encoding, as DER requires. An empty
optional community list is encoded as absent (pyasn1 drops empty SEQUENCE OFs, so it would not round-trip).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from mpki.asn1.cms import boolean, enumerated, explicit, implicit, integer, octet_string, oid, sequence
from mpki.asn1.der import tlv
from mpki.asn1.tamp.anchors import TrustAnchor
from mpki.asn1.tamp.changes import AddAnchor, RemoveAnchor, Update
from mpki.asn1.tamp.codes import ContentType, StatusCode
from mpki.asn1.tamp.targets import MsgRef, SequenceNumber, encode_communities, encode_msg_ref, encode_seq_numbers
from mpki.domain import InvalidRequest


@dataclass(frozen=True, slots=True)
class StatusQuery:
    content_type: ClassVar[ContentType] = ContentType.STATUS_QUERY
    query: MsgRef
    terse: bool = False

    def encode(self) -> bytes:
        return sequence(*_terse(self.terse), encode_msg_ref(self.query))


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
                body += encode_communities(self.communities)
            response = tlv(0xA0, body)
        else:
            body = _anchor_list(self.trust_anchors)
            if self.contin_pub_key_decrypt_alg is not None:
                body += implicit(0, sequence(oid(self.contin_pub_key_decrypt_alg)))
            if self.communities:
                body += implicit(1, encode_communities(self.communities))
            if self.seq_numbers is not None:
                body += implicit(2, encode_seq_numbers(self.seq_numbers))
            response = tlv(0xA1, body)
        return sequence(encode_msg_ref(self.query), response, *([] if self.uses_apex else [boolean(False)]))


@dataclass(frozen=True, slots=True)
class TampUpdate:
    content_type: ClassVar[ContentType] = ContentType.UPDATE
    msg_ref: MsgRef
    updates: tuple[Update, ...]
    terse: bool = False
    seq_numbers: tuple[SequenceNumber, ...] | None = None

    def encode(self) -> bytes:
        tail = [] if self.seq_numbers is None else [implicit(2, encode_seq_numbers(self.seq_numbers))]
        return sequence(
            *_terse(self.terse),
            encode_msg_ref(self.msg_ref),
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
        return _confirm(self.update, self.terse, sequence(*(enumerated(s) for s in self.statuses)), self._verbose)

    def _verbose(self) -> bytes:
        body = _anchor_list(self.trust_anchors)
        if self.seq_numbers is not None:
            body += encode_seq_numbers(self.seq_numbers)
        return body if self.uses_apex else body + boolean(False)


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
            encode_msg_ref(self.msg_ref),
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
        return _confirm(self.apex_replace, self.terse, enumerated(self.status), self._verbose)

    def _verbose(self) -> bytes:
        body = _anchor_list(self.trust_anchors)
        if self.communities:
            body += implicit(0, encode_communities(self.communities))
        if self.seq_numbers is not None:
            body += implicit(1, encode_seq_numbers(self.seq_numbers))
        return body


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
            updates += implicit(1, encode_communities(self.remove))
        if self.add:
            updates += implicit(2, encode_communities(self.add))
        return sequence(*_terse(self.terse), encode_msg_ref(self.msg_ref), tlv(0x30, updates))


@dataclass(frozen=True, slots=True)
class CommunityUpdateConfirm:
    content_type: ClassVar[ContentType] = ContentType.COMMUNITY_UPDATE_CONFIRM
    update: MsgRef
    status: StatusCode
    terse: bool = False
    communities: tuple[str, ...] | None = None

    def encode(self) -> bytes:
        return _confirm(self.update, self.terse, enumerated(self.status), self._verbose)

    def _verbose(self) -> bytes:
        return encode_communities(self.communities) if self.communities else b""


@dataclass(frozen=True, slots=True)
class SequenceNumberAdjust:
    """Tell a store the signer's current sequence number, so that older messages are refused."""

    content_type: ClassVar[ContentType] = ContentType.SEQ_NUM_ADJUST
    msg_ref: MsgRef

    def encode(self) -> bytes:
        return sequence(encode_msg_ref(self.msg_ref))


@dataclass(frozen=True, slots=True)
class SequenceNumberAdjustConfirm:
    content_type: ClassVar[ContentType] = ContentType.SEQ_NUM_ADJUST_CONFIRM
    adjust: MsgRef
    status: StatusCode

    def encode(self) -> bytes:
        return sequence(encode_msg_ref(self.adjust), enumerated(self.status))


@dataclass(frozen=True, slots=True)
class TampError:
    """The answer to a message that could not be processed at all; `msg_ref` when it could be read."""

    content_type: ClassVar[ContentType] = ContentType.ERROR
    msg_type: str
    status: StatusCode
    msg_ref: MsgRef | None = None

    def encode(self) -> bytes:
        return sequence(
            oid(self.msg_type),
            enumerated(self.status),
            *([] if self.msg_ref is None else [encode_msg_ref(self.msg_ref)]),
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


def _terse(terse: bool) -> list[bytes]:
    """[1] TerseOrVerbose DEFAULT verbose: present only when terse."""
    return [implicit(1, enumerated(1))] if terse else []


def _confirm(ref: MsgRef, terse: bool, status: bytes, verbose: Callable[[], bytes]) -> bytes:
    """The shape the three confirms share: the request's MsgRef, then [0] the status alone when terse,
    else [1] the status followed by `verbose()` (only called then: a terse answer lists no anchors)."""
    if terse:
        return sequence(encode_msg_ref(ref), implicit(0, status))
    return sequence(encode_msg_ref(ref), tlv(0xA1, status + verbose()))


def _anchor_list(anchors: tuple[TrustAnchor, ...]) -> bytes:
    """TrustAnchorChoiceList is SIZE (1..MAX): a verbose answer always lists at least the apex."""
    if not anchors:
        raise InvalidRequest("a verbose TAMP answer lists at least one trust anchor")
    return sequence(*(a.der for a in anchors))


def _update(update: Update) -> bytes:
    if isinstance(update, AddAnchor):
        return explicit(1, update.anchor.der)
    if isinstance(update, RemoveAnchor):
        return implicit(2, update.public_key_info)
    return explicit(3, update.der)
