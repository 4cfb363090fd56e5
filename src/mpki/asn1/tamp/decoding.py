"""Reading a TAMP message back: `decode_message(content_type, der)` decodes the content with
pyasn1-alt-modules' `rfc5934` definitions, insists that it re-encodes to the same DER, and returns the
message dataclass. Trust anchors come back as their TrustAnchorChoice DER, octet for octet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyasn1.codec.der import encoder
from pyasn1.error import PyAsn1Error
from pyasn1_alt_modules import rfc5934

from mpki.asn1.cms import untag
from mpki.asn1.tamp.anchors import TrustAnchor
from mpki.asn1.tamp.changes import AddAnchor, ChangeAnchor, RemoveAnchor, Update
from mpki.asn1.tamp.codes import ContentType, StatusCode, TampDecodeError, decode_exact, der_of
from mpki.asn1.tamp.messages import (
    ApexUpdate,
    ApexUpdateConfirm,
    CommunityUpdate,
    CommunityUpdateConfirm,
    Message,
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    StatusQuery,
    StatusResponse,
    TampError,
    TampUpdate,
    TampUpdateConfirm,
)
from mpki.asn1.tamp.targets import read_communities, read_msg_ref, read_seq_numbers

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


def decode_message(content_type: str, der: bytes) -> Message:
    """Decode the content of one TAMP message of `content_type`; it must re-encode to the same DER."""
    if content_type not in _SPECS:
        raise TampDecodeError(StatusCode.unsupportedTAMPMsgType, f"{content_type} is not a TAMP message type")
    value = decode_exact(der, _SPECS[content_type](), "TAMP message")
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


def _read_terse(value: Any) -> bool:
    return bool(value["terse"].isValue and int(value["terse"]) == 1)


def _read_anchors(value: Any) -> tuple[TrustAnchor, ...]:
    return tuple(TrustAnchor(der_of(choice.getComponent())) for choice in value)


def _read_status_query(v: Any) -> Message:
    return StatusQuery(read_msg_ref(v["query"]), _read_terse(v))


def _read_status_response(v: Any) -> Message:
    response = v["response"]
    inner = response.getComponent()
    uses_apex = bool(v["usesApex"]) if v["usesApex"].isValue else True
    if response.getName() == "terseResponse":
        return StatusResponse(
            read_msg_ref(v["query"]),
            terse=True,
            ta_key_ids=tuple(bytes(k) for k in inner["taKeyIds"]),
            communities=read_communities(inner["communities"]),
            uses_apex=uses_apex,
        )
    alg = inner["continPubKeyDecryptAlg"]
    return StatusResponse(
        read_msg_ref(v["query"]),
        trust_anchors=_read_anchors(inner["taInfo"]),
        contin_pub_key_decrypt_alg=str(alg["algorithm"]) if alg.isValue else None,
        communities=read_communities(inner["communities"]),
        seq_numbers=read_seq_numbers(inner["tampSeqNumbers"]),
        uses_apex=uses_apex,
    )


def _read_update(v: Any) -> Message:
    updates: list[Update] = []
    for item in v["updates"]:
        name = item.getName()
        inner = item.getComponent()
        if name == "add":
            updates.append(AddAnchor(TrustAnchor(der_of(inner.getComponent()))))
        elif name == "remove":
            updates.append(RemoveAnchor(untag(der_of(inner), 0x30)))
        else:
            updates.append(ChangeAnchor(_change_der(inner)))
    return TampUpdate(read_msg_ref(v["msgRef"]), tuple(updates), _read_terse(v), read_seq_numbers(v["tampSeqNumbers"]))


def _change_der(choice: Any) -> bytes:
    """The TrustAnchorChangeInfoChoice DER: its chosen alternative's tagged encoding."""
    return der_of(choice.getComponent())


def _read_update_confirm(v: Any) -> Message:
    confirm = v["confirm"]
    inner = confirm.getComponent()
    if confirm.getName() == "terseConfirm":
        return TampUpdateConfirm(read_msg_ref(v["update"]), tuple(StatusCode(int(s)) for s in inner), terse=True)
    return TampUpdateConfirm(
        read_msg_ref(v["update"]),
        tuple(StatusCode(int(s)) for s in inner["status"]),
        trust_anchors=_read_anchors(inner["taInfo"]),
        seq_numbers=read_seq_numbers(inner["tampSeqNumbers"]),
        uses_apex=bool(inner["usesApex"]) if inner["usesApex"].isValue else True,
    )


def _read_apex_update(v: Any) -> Message:
    return ApexUpdate(
        read_msg_ref(v["msgRef"]),
        apex=TrustAnchor(der_of(v["apexTA"])),
        clear_trust_anchors=bool(v["clearTrustAnchors"]),
        clear_communities=bool(v["clearCommunities"]),
        seq_number=int(v["seqNumber"]) if v["seqNumber"].isValue else None,
        terse=_read_terse(v),
    )


def _read_apex_update_confirm(v: Any) -> Message:
    confirm = v["apexConfirm"]
    inner = confirm.getComponent()
    if confirm.getName() == "terseApexConfirm":
        return ApexUpdateConfirm(read_msg_ref(v["apexReplace"]), StatusCode(int(inner)), terse=True)
    return ApexUpdateConfirm(
        read_msg_ref(v["apexReplace"]),
        StatusCode(int(inner["status"])),
        trust_anchors=_read_anchors(inner["taInfo"]),
        communities=read_communities(inner["communities"]),
        seq_numbers=read_seq_numbers(inner["tampSeqNumbers"]),
    )


def _read_community_update(v: Any) -> Message:
    updates = v["updates"]
    return CommunityUpdate(
        read_msg_ref(v["msgRef"]),
        remove=read_communities(updates["remove"]),
        add=read_communities(updates["add"]),
        terse=_read_terse(v),
    )


def _read_community_update_confirm(v: Any) -> Message:
    confirm = v["commConfirm"]
    inner = confirm.getComponent()
    if confirm.getName() == "terseCommConfirm":
        return CommunityUpdateConfirm(read_msg_ref(v["update"]), StatusCode(int(inner)), terse=True)
    return CommunityUpdateConfirm(
        read_msg_ref(v["update"]), StatusCode(int(inner["status"])), communities=read_communities(inner["communities"])
    )


def _read_seq_num_adjust(v: Any) -> Message:
    return SequenceNumberAdjust(read_msg_ref(v["msgRef"]))


def _read_seq_num_adjust_confirm(v: Any) -> Message:
    return SequenceNumberAdjustConfirm(read_msg_ref(v["adjust"]), StatusCode(int(v["status"])))


def _read_error(v: Any) -> Message:
    ref = read_msg_ref(v["msgRef"]) if v["msgRef"].isValue else None
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
