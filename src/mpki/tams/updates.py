"""The trust-anchor changes of a TAMPUpdate (add, remove, change), one status code per update."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from mpki.asn1.tamp import (
    ANY_CONTENT_TYPE,
    CMS_CONTENT_CONSTRAINTS_EXT,
    AddAnchor,
    ChangeAnchor,
    ContentType,
    RemoveAnchor,
    StatusCode,
    TampDecodeError,
    TrustAnchor,
    Update,
    changed_tbs_certificate,
    decode_content_constraints,
)
from mpki.tams.state import AnchorRecord, StoreState

# A management anchor may sign these; the apex update is the apex's (or its contingency key's) alone.
MANAGEMENT_TYPES = frozenset(
    {
        ContentType.STATUS_QUERY,
        ContentType.UPDATE,
        ContentType.COMMUNITY_UPDATE,
        ContentType.SEQ_NUM_ADJUST,
    }
)


def permitted_types(anchor: TrustAnchor) -> frozenset[str]:
    """The TAMP messages an anchor may sign, from its cmsContentConstraints extension (RFC 6010)."""
    ext = anchor.extension(CMS_CONTENT_CONSTRAINTS_EXT)
    if ext is None:
        return frozenset()
    types = set(decode_content_constraints(ext.value))
    if ANY_CONTENT_TYPE in types:
        return frozenset(MANAGEMENT_TYPES)
    return frozenset(types & MANAGEMENT_TYPES)


def supported_key(anchor: TrustAnchor) -> bool:
    try:
        serialization.load_der_public_key(anchor.public_key_info)
    except (ValueError, TypeError):
        return False
    return True


def _index(state: StoreState, public_key_info: bytes) -> int | None:
    for i, record in enumerate(state.anchors):
        if record.anchor.public_key_info == public_key_info:
            return i
    return None


def _add(state: StoreState, anchor: TrustAnchor) -> StatusCode:
    if anchor.public_key_info == state.apex.public_key_info:
        return StatusCode.improperTAAddition
    if not supported_key(anchor):
        return StatusCode.unsupportedTAAlgorithm
    try:
        types = permitted_types(anchor)
    except TampDecodeError as exc:
        return exc.status
    found = _index(state, anchor.public_key_info)
    if found is not None:
        # Adding what is already there is harmless; adding a different anchor for the same key is not.
        return StatusCode.success if state.anchors[found].anchor == anchor else StatusCode.improperTAAddition
    state.anchors.append(AnchorRecord(anchor, types))
    return StatusCode.success


def _remove(state: StoreState, public_key_info: bytes) -> StatusCode:
    if public_key_info == state.apex.public_key_info:
        return StatusCode.apexTAMPAnchor
    found = _index(state, public_key_info)
    if found is None:
        return StatusCode.trustAnchorNotFound
    removed = state.anchors.pop(found)
    state.seq_numbers.pop(removed.anchor.key_id, None)
    return StatusCode.success


def _changed(old: TrustAnchor, change: ChangeAnchor) -> TrustAnchor | None:
    """taChange fits a TrustAnchorInfo anchor, tbsCertChange a TBSCertificate one; a signed certificate
    cannot be changed in place (its signature would break): it is removed and added instead."""
    if change.kind == "tbsCertChange" and old.kind == "tbsCert":
        return changed_tbs_certificate(old, change.tbs_fields())
    if change.kind != "taChange" or old.kind != "taInfo":
        return None
    extensions = change.extensions
    return TrustAnchor.from_info(
        old.public_key_info,
        change.key_id if change.key_id is not None else old.key_id,
        change.title if change.title is not None else old.title,
        extensions if extensions is not None else old.extensions,
        old.cert_path,
    )


def _change(state: StoreState, change: ChangeAnchor) -> StatusCode:
    spki = change.public_key_info
    if spki == state.apex.public_key_info:
        return StatusCode.apexTAMPAnchor
    found = _index(state, spki)
    if found is None:
        return StatusCode.trustAnchorNotFound
    old = state.anchors[found].anchor
    new = _changed(old, change)
    if new is None:
        return StatusCode.improperTAChange
    try:
        types = permitted_types(new)
    except TampDecodeError as exc:
        return exc.status
    if new.key_id != old.key_id:
        state.seq_numbers.pop(old.key_id, None)
    state.anchors[found] = AnchorRecord(new, types)
    return StatusCode.success


def apply_updates(state: StoreState, updates: tuple[Update, ...]) -> tuple[StatusCode, ...]:
    """Apply each update to `state` in order and return their status codes; the caller keeps the result
    only if every one succeeded (a TAMPUpdate is all or nothing)."""
    statuses: list[StatusCode] = []
    for update in updates:
        if isinstance(update, AddAnchor):
            statuses.append(_add(state, update.anchor))
        elif isinstance(update, RemoveAnchor):
            statuses.append(_remove(state, update.public_key_info))
        else:
            try:
                statuses.append(_change(state, update))
            except TampDecodeError as exc:
                statuses.append(exc.status)
    return tuple(statuses)
