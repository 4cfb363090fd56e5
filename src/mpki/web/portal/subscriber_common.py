"""What every subscriber page needs: the services, the organisation choice, and reading CSRs from a form.

Reading is only about HTTP shapes (pasted text, an uploaded file, PEM or base64 DER); what a CSR must be
is decided in `ra` and `profiles`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import BinaryIO

from fastapi import Request, UploadFile

from mpki.domain import Action, InvalidRequest
from mpki.ra import OrganisationView, Principal
from mpki.ra.authorisation import authorise, scope_of
from mpki.ra.intake import SUBSCRIBER_PROFILES
from mpki.ra.single_request import MAX_CSR_BYTES
from mpki.ra.subscriber_views import SubscriberViews
from mpki.web.api import Services

PROFILES = SUBSCRIBER_PROFILES
PROFILE_LABELS = {
    "smki-device": "smki-device: SMKI device (EUI-64 in the SAN)",
    "smki-org": "smki-org: SMKI organisation",
    "tls-server": "tls-server: TLS server",
    "tls-client": "tls-client: TLS client",
}
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
BATCH_FORMATS = "a file of concatenated PEM CSRs, one base64 DER CSR per line, or a single DER CSR"


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def views(request: Request) -> SubscriberViews:
    return SubscriberViews(services(request).authority.database)


def may_submit(principal: Principal) -> None:
    """Forbidden for people who may not request certificates (RA agents, auditors): before any form is shown
    or read, so they get "Not allowed" rather than a form they cannot use."""
    authorise(principal, Action.REQUEST_SUBMIT, principal.organisation_id)


def can_submit(principal: Principal) -> bool:
    return scope_of(principal, Action.REQUEST_SUBMIT) is not None


def organisation_choices(request: Request, principal: Principal) -> list[OrganisationView]:
    """Provider staff act for any organisation and must name one; an organisation's own people need not."""
    if principal.organisation_id is not None:
        return []
    return services(request).directory.organisations(principal)


def organisation_names(request: Request, principal: Principal) -> dict[int, str]:
    """Id -> name of the organisations this person may see (to label rows)."""
    if scope_of(principal, Action.ORG_VIEW) is None:
        return {}
    return {org.id: org.name for org in services(request).directory.organisations(principal)}


def chosen_organisation(principal: Principal, organisation: str) -> str | None:
    """The form's organisation, required for provider staff and ignored for an organisation's people."""
    if principal.organisation_id is not None:
        return None
    if not organisation.strip():
        raise InvalidRequest("choose the organisation the request is for")
    return organisation.strip()


def read_upload(upload: UploadFile | None, limit: int) -> bytes:
    """An uploaded file's bytes (empty when no file was chosen); refused when over `limit`."""
    if upload is None:
        return b""
    stream: BinaryIO = upload.file
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InvalidRequest(f"the file is larger than {limit // 1024:,} KiB")
    return data


def single_csr(pasted: str, uploaded: bytes) -> bytes:
    """One CSR from the textarea or the file (not both): PEM as is (text before it dropped), else DER or base64 DER."""
    if pasted.strip() and uploaded.strip():
        raise InvalidRequest("paste a CSR or upload a file, not both")
    data = uploaded if uploaded.strip() else pasted.encode()
    if len(data) > MAX_CSR_BYTES:
        raise InvalidRequest(f"a CSR is at most {MAX_CSR_BYTES // 1024} KiB")
    start = data.find(b"-----BEGIN")
    if start >= 0:
        return data[start:].strip()
    if data[:1] == b"\x30":
        return data
    compact = b"".join(data.split())
    try:
        return base64.b64decode(compact, validate=True) if compact else b""
    except (binascii.Error, ValueError):
        return data.strip()


def batch_csrs(data: bytes) -> list[bytes]:
    """The CSRs of a batch file. Items that do not decode go through as they are, for `ra` to reject one
    by one (a bad neighbour never loses a good item); a file with no CSR at all is refused whole."""
    if not data.strip():
        raise InvalidRequest(f"the file is empty; expected {BATCH_FORMATS}")
    if data[:1] == b"\x30":
        return [data]
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(data)]
    if blocks:
        return blocks
    if b"-----BEGIN" in data:
        raise InvalidRequest("the file has a PEM header without its matching END line")
    lines = [line.strip() for line in data.splitlines()]
    items = [line for line in lines if line and not line.startswith(b"#")]
    decoded: list[bytes] = []
    readable = 0
    for line in items:
        try:
            decoded.append(base64.b64decode(line, validate=True))
            readable += 1
        except (binascii.Error, ValueError):
            decoded.append(line)
    if readable == 0:
        raise InvalidRequest(f"the file holds no CSRs; expected {BATCH_FORMATS}")
    return decoded
