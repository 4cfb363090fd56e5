"""Portal section: the subscriber's pages. An Authorised Subscriber or Org RA officer submits CSRs (one,
a batch, or made in the browser), follows requests and batches, picks up and revokes certificates; provider
staff may do the same for any organisation, naming it on each form. One module per page family."""

from __future__ import annotations

from fastapi import APIRouter

from mpki.web.portal import subscriber_batches, subscriber_certificates, subscriber_keygen, subscriber_requests

router = APIRouter(prefix="/portal", include_in_schema=False)
for _part in (subscriber_requests, subscriber_batches, subscriber_certificates, subscriber_keygen):
    router.include_router(_part.router)
