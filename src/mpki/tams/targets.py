"""Whether a TAMP message is addressed to this store (RFC 5934 TargetIdentifier)."""

from __future__ import annotations

from mpki.asn1.tamp import (
    AllModules,
    CommunityTarget,
    HardwareModules,
    HardwareTarget,
    SerialBlock,
    StatusCode,
    Target,
)
from mpki.tams.errors import TampRefused
from mpki.tams.state import HardwareIdentity


def _serial_matches(module: HardwareModules, serial: bytes) -> bool:
    for entry in module.serials:
        if entry is None or entry == serial:
            return True
        in_block = (
            isinstance(entry, SerialBlock)
            and len(entry.low) == len(entry.high) == len(serial)
            and entry.low <= serial <= entry.high
        )
        if in_block:
            return True
    return False


def check_target(target: Target, communities: list[str], hardware: HardwareIdentity | None) -> None:
    """Raise TampRefused(incorrectTarget) unless `target` names this store; uri and otherName targets
    are not supported by the reference store (unsupportedTargetIdentifier)."""
    if isinstance(target, AllModules):
        return
    if isinstance(target, CommunityTarget):
        if set(target.communities) & set(communities):
            return
        raise TampRefused(StatusCode.incorrectTarget, "the store belongs to none of the target communities")
    if isinstance(target, HardwareTarget):
        if hardware is not None and any(
            m.hw_type == hardware.hw_type and _serial_matches(m, hardware.serial) for m in target.modules
        ):
            return
        raise TampRefused(StatusCode.incorrectTarget, "the target hardware modules do not include this store")
    raise TampRefused(StatusCode.unsupportedTargetIdentifier, "uri and otherName targets are not supported")
