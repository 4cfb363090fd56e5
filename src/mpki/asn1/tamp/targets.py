"""Whom a TAMP message is for (TargetIdentifier), TAMPMsgRef with the signer's sequence number, and
TAMPSequenceNumber, with their DER writers and readers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpki.asn1.cms import ia5_string, implicit, integer, null, octet_string, oid, sequence, untag
from mpki.asn1.tamp.codes import der_of


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


def encode_communities(communities: tuple[str, ...]) -> bytes:
    return sequence(*(oid(c) for c in communities))


def encode_seq_numbers(numbers: tuple[SequenceNumber, ...]) -> bytes:
    return sequence(*(sequence(octet_string(n.key_id), integer(n.seq_num)) for n in numbers))


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
        return implicit(2, encode_communities(target.communities))
    if isinstance(target, HardwareTarget):
        modules = (sequence(oid(m.hw_type), sequence(*(_serial_entry(s) for s in m.serials))) for m in target.modules)
        return implicit(1, sequence(*modules))
    if isinstance(target, UriTarget):
        return implicit(4, ia5_string(target.uri))
    return implicit(5, target.der)


def encode_msg_ref(ref: MsgRef) -> bytes:
    return sequence(_target(ref.target), integer(ref.seq_num))


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
    return OtherNameTarget(untag(der_of(inner), 0x30))


def read_msg_ref(value: Any) -> MsgRef:
    return MsgRef(_read_target(value["target"]), int(value["seqNum"]))


def read_seq_numbers(value: Any) -> tuple[SequenceNumber, ...] | None:
    if not value.isValue:
        return None
    return tuple(SequenceNumber(bytes(n["keyId"]), int(n["seqNumber"])) for n in value)


def read_communities(value: Any) -> tuple[str, ...] | None:
    if not value.isValue:
        return None
    return tuple(str(c) for c in value)
