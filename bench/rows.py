"""Certificate rows for filling a benchmark database fast: what CRL and report queries read, with a
placeholder DER (they never read it), so a million rows cost seconds, not a million signatures."""

from __future__ import annotations

import datetime as dt
from typing import Any

PLACEHOLDER_DER = b"\x30\x00"


def device_certificate_row(
    ca_id: int,
    serial: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    created_at: dt.datetime,
    organisation_id: int | None = None,
    revoked_at: dt.datetime | None = None,
    revocation_reason: int | None = None,
) -> dict[str, Any]:
    """One smki-device certificate row, revoked when `revoked_at` is given; digests derived from the serial."""
    return {
        "ca_id": ca_id,
        "serial": serial,
        "subject": "",
        "eui64": None,
        "role_code": None,
        "profile": "smki-device",
        "key_usage": "digitalSignature",
        "status": "issued" if revoked_at is None else "revoked",
        "not_before": not_before,
        "not_after": not_after,
        "der": PLACEHOLDER_DER,
        "fingerprint_sha256": serial.rjust(64, "f"),
        "public_key_sha256": serial.rjust(64, "e"),
        "request_id": None,
        "organisation_id": organisation_id,
        "created_at": created_at,
        "revoked_at": revoked_at,
        "revocation_reason": revocation_reason,
        "revoked_by": None if revoked_at is None else "bench",
    }
