"""One CSR from a person at a form: checked before anything is stored, then processed at once.

A batch records even its bad items (their rejection is the batch's answer), but a person who pasted the
wrong file should just see the form again: so a single request is checked against its profile first and
refused with the reason, writing nothing. What only processing can tell (an already-certified key, a
held duplicate, the approval rule) still comes back as the request's status.
"""

from __future__ import annotations

from mpki.domain import InvalidRequest, NotFound
from mpki.profiles import get_profile
from mpki.ra.authorisation import Principal
from mpki.ra.intake import SUBSCRIBER_PROFILES, Registration
from mpki.ra.views import RequestView

MAX_CSR_BYTES = 64 * 1024


def precheck(
    registration: Registration, principal: Principal, profile: str, csr: bytes, organisation: str | None
) -> None:
    """Raise InvalidRequest (or Forbidden/NotFound) for what intake would reject; nothing is written."""
    if profile not in SUBSCRIBER_PROFILES:
        try:
            get_profile(profile)
        except NotFound:
            raise InvalidRequest(
                f"unknown profile {profile!r}; choose one of {', '.join(SUBSCRIBER_PROFILES)}"
            ) from None
        raise InvalidRequest(f"profile {profile} is not requested through the RA")
    if not csr.strip():
        raise InvalidRequest("paste a CSR or choose a CSR file")
    if len(csr) > MAX_CSR_BYTES:
        raise InvalidRequest(f"a CSR is at most {MAX_CSR_BYTES // 1024} KiB; this one is {len(csr) // 1024} KiB")
    registration.precheck(principal, profile, csr, organisation)  # authorises REQUEST_SUBMIT for the org


def submit_one(
    registration: Registration, principal: Principal, profile: str, csr: bytes, organisation: str | None = None
) -> RequestView:
    """Check, store and process one CSR now (as POST /api/v1/requests does); the stored request's view."""
    precheck(registration, principal, profile, csr, organisation)
    batch = registration.submit_batch(principal, profile, [csr], organisation)
    registration.process_batch(batch.id)
    _, items = registration.batch(principal, batch.id)
    return items[0]
