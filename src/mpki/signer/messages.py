"""What crosses the signer's socket, as plain JSON values: key descriptions, shares, statuses, errors."""

from __future__ import annotations

import base64
from typing import Any

from mpki.domain import Forbidden, InvalidRequest, KeyStoreError, MpkiError, NotFound
from mpki.keys import KeyAlgorithm, KeyInfo
from mpki.keys.quorum import CustodianShare, QuorumError
from mpki.signer.service import ActivationResult, SignerStatus

# The error kinds a signer may answer with; anything else arrives as a KeyStoreError.
ERROR_KINDS: dict[str, type[MpkiError]] = {
    "InvalidRequest": InvalidRequest,
    "NotFound": NotFound,
    "Forbidden": Forbidden,
    "QuorumError": QuorumError,
    "KeyStoreError": KeyStoreError,
}


def error_kind(error: MpkiError) -> str:
    for name, kind in ERROR_KINDS.items():
        if type(error) is kind:
            return name
    for name, kind in ERROR_KINDS.items():
        if isinstance(error, kind):
            return name
    return "KeyStoreError"


def raise_error(header: dict[str, Any]) -> None:
    kind = ERROR_KINDS.get(str(header.get("kind")), KeyStoreError)
    raise kind(str(header.get("error", "the signer refused")))


def info_to_wire(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "label": info.label,
        "algorithm": info.algorithm.value,
        "backend": info.backend,
        "public_key": base64.b64encode(info.public_key_der).decode(),
        "token": info.token,
    }


def info_from_wire(value: dict[str, Any]) -> KeyInfo:
    return KeyInfo(
        key_id=str(value["key_id"]),
        label=str(value["label"]),
        algorithm=KeyAlgorithm(value["algorithm"]),
        backend=str(value["backend"]),
        public_key_der=base64.b64decode(value["public_key"]),
        token=value.get("token"),
    )


_SHARE_FIELDS = ("group", "ceremony", "custodian", "index", "threshold", "shares", "mnemonic", "sealed")


def share_to_wire(share: CustodianShare) -> dict[str, Any]:
    return {name: getattr(share, name) for name in _SHARE_FIELDS}


def share_from_wire(value: object) -> CustodianShare:
    if not isinstance(value, dict):
        raise InvalidRequest("a share sent to the signer is not an object")
    try:
        fields: dict[str, Any] = {name: value.get(name) for name in _SHARE_FIELDS}
        return CustodianShare(**fields)
    except TypeError:
        raise InvalidRequest("a share sent to the signer is damaged") from None


def activation_to_wire(result: ActivationResult) -> dict[str, Any]:
    return {"group": result.group, "custodians": list(result.custodians), "shares_presented": result.shares_presented}


def activation_from_wire(value: dict[str, Any]) -> ActivationResult:
    return ActivationResult(str(value["group"]), tuple(value["custodians"]), int(value["shares_presented"]))


def status_to_wire(status: SignerStatus) -> dict[str, Any]:
    return {
        "environment": status.environment,
        "backend": status.backend,
        "active_groups": list(status.active_groups),
        "signatures": dict(status.signatures),
        "pid": status.pid,
    }


def status_from_wire(value: dict[str, Any]) -> SignerStatus:
    return SignerStatus(
        environment=str(value["environment"]),
        backend=str(value["backend"]),
        active_groups=tuple(value["active_groups"]),
        signatures={str(k): int(v) for k, v in value["signatures"].items()},
        pid=int(value["pid"]),
        remote=True,
    )
