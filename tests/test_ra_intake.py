"""RA intake in-process: per-item results, duplicate holds, entitlement, decisions, isolation, pickup."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509

from mpki.audit import verify_chain
from mpki.ca import CertificationAuthority
from mpki.domain import Forbidden, InvalidRequest, Role
from mpki.ra import OPERATOR, Directory, Principal
from mpki.ra.intake import Registration
from tests.csr_factory import corrupt_signature, device_csr, ec_key, org_csr, random_eui64

ORG_A_EUI = bytes.fromhex("90B3D51F30010000")


@dataclass
class Desk:
    registration: Registration
    subscriber_a: Principal
    subscriber_b: Principal
    agent: Principal
    officer_a: Principal


@pytest.fixture
def desk(authority: CertificationAuthority) -> Iterator[Desk]:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, "Org A", [ORG_A_EUI.hex()], ["supplier"])
    directory.create_organisation(OPERATOR, "Org B", ["90B3D51F30020000"], ["network-operator"])
    people = [
        ("sub-a@a.test", Role.AUTHORISED_SUBSCRIBER, "Org A"),
        ("sub-b@b.test", Role.AUTHORISED_SUBSCRIBER, "Org B"),
        ("agent@provider.test", Role.RA_AGENT, None),
        ("officer-a@a.test", Role.ORG_RA_OFFICER, "Org A"),
    ]
    principals = []
    for email, role, org in people:
        directory.create_person(OPERATOR, email, role, org)
        principals.append(directory.authenticate(directory.create_token(OPERATOR, email)))
    yield Desk(Registration(authority.database, authority), *principals)


def test_a_batch_reports_every_item(desk: Desk, authority: CertificationAuthority) -> None:
    euis = [random_eui64() for _ in range(200)]
    csrs = [device_csr(eui) for eui in euis]
    csrs[3] = b"not a csr"
    csrs[4] = corrupt_signature(csrs[4])
    csrs[5] = csrs[5][:40]
    csrs[10] = device_csr(euis[11])  # same device and usage as item 11: the later one is held
    key = ec_key()
    csrs[20] = device_csr(euis[20], key=key)
    csrs[21] = device_csr(euis[21], key=key)  # the same public key twice: the second is rejected

    submitted = desk.registration.submit_batch(desk.subscriber_a, "smki-device", csrs)
    assert submitted.status == "submitted"
    done = desk.registration.process_next()
    assert done is not None and done.id == submitted.id and done.status == "completed"
    view, items = desk.registration.batch(desk.subscriber_a, submitted.id)
    status = {item.item_index: item.status for item in items}
    assert [i for i, s in status.items() if s == "rejected"] == [3, 4, 5, 21]
    assert [i for i, s in status.items() if s == "pending"] == [11]
    assert sum(1 for s in status.values() if s == "issued") == 195
    assert (view.issued, view.rejected, view.held, view.processed) == (195, 4, 1, 200)
    reasons = {item.item_index: item.reason for item in items}
    assert "already certified" in (reasons[21] or "")
    assert "duplicate device check" in (reasons[11] or "")
    assert "signature does not verify" in (reasons[4] or "")

    held = next(item for item in items if item.status == "pending")
    approved = desk.registration.decide(desk.agent, held.id, True)
    assert approved.status == "issued" and approved.serial
    certificates = desk.registration.batch_certificates(desk.subscriber_a, submitted.id)
    assert len(certificates) == 196
    assert all(x509.load_der_x509_certificate(der).issuer.rfc4514_string() for der in certificates)
    assert desk.registration.batch(desk.subscriber_a, submitted.id)[0].held == 0
    assert verify_chain(authority.database).ok


def test_a_device_with_a_live_certificate_is_held_in_a_later_batch(desk: Desk) -> None:
    eui = random_eui64()
    first = desk.registration.submit_batch(desk.subscriber_a, "smki-device", [device_csr(eui)])
    desk.registration.process_next()
    second = desk.registration.submit_batch(
        desk.subscriber_a, "smki-device", [device_csr(eui), device_csr(eui, usage="keyAgreement")]
    )
    desk.registration.process_next()
    statuses = [item.status for item in desk.registration.batch(desk.subscriber_a, second.id)[1]]
    assert statuses == ["pending", "issued"]  # same usage held; the other usage is a different certificate
    assert desk.registration.batch(desk.subscriber_a, first.id)[0].issued == 1


def test_organisation_requests_wait_and_respect_entitlement(desk: Desk) -> None:
    csrs = [
        org_csr(ORG_A_EUI, role="02"),
        org_csr(ORG_A_EUI, role="03"),  # Org A may not hold network operator
        org_csr(bytes.fromhex("90B3D51F30010001"), role="02"),  # not Org A's EUI-64
    ]
    batch = desk.registration.submit_batch(desk.subscriber_a, "smki-org", csrs)
    desk.registration.process_next()
    items = desk.registration.batch(desk.subscriber_a, batch.id)[1]
    assert [i.status for i in items] == ["pending", "rejected", "rejected"]
    assert "may not hold role 03" in (items[1].reason or "")
    assert "not one of Org A's entity identifiers" in (items[2].reason or "")

    with pytest.raises(Forbidden):  # a subscriber may not approve
        desk.registration.decide(desk.subscriber_a, items[0].id, True)
    with pytest.raises(Forbidden):  # another organisation's people never see it
        desk.registration.request(desk.subscriber_b, items[0].id)
    with pytest.raises(InvalidRequest, match="needs a reason"):
        desk.registration.decide(desk.officer_a, items[0].id, False, "  ")
    assert desk.registration.decide(desk.officer_a, items[0].id, True).status == "issued"
    with pytest.raises(InvalidRequest, match="not pending"):
        desk.registration.decide(desk.agent, items[0].id, False, "too late")


def test_dual_control_refuses_the_submitter_as_approver(desk: Desk) -> None:
    batch = desk.registration.submit_batch(desk.officer_a, "smki-org", [org_csr(ORG_A_EUI, role="02")])
    desk.registration.process_next()
    [item] = desk.registration.batch(desk.officer_a, batch.id)[1]
    with pytest.raises(Forbidden, match="dual control"):
        desk.registration.decide(desk.officer_a, item.id, True)
    assert desk.registration.decide(desk.agent, item.id, True).status == "issued"


def test_listings_stay_inside_the_organisation(desk: Desk) -> None:
    desk.registration.submit_batch(desk.subscriber_a, "smki-device", [device_csr(random_eui64())])
    desk.registration.submit_batch(desk.subscriber_b, "smki-device", [device_csr(random_eui64())])
    while desk.registration.process_next():
        pass
    a_ids = {r.organisation_id for r in desk.registration.requests(desk.subscriber_a)}
    assert a_ids == {desk.subscriber_a.organisation_id}
    assert len(desk.registration.batches(desk.subscriber_b)) == 1
    assert len(desk.registration.requests(desk.agent)) == 2
    with pytest.raises(Forbidden):
        desk.registration.batch(desk.subscriber_b, desk.registration.batches(desk.subscriber_a)[0].id)


@pytest.mark.parametrize(
    ("profile", "count", "error", "message"),
    [
        ("smki-root", 1, InvalidRequest, "not requested through the RA"),
        ("nope", 1, InvalidRequest, "unknown profile"),
        ("smki-device", 0, InvalidRequest, "at least"),
    ],
)
def test_bad_batches_write_nothing(desk: Desk, profile: str, count: int, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        desk.registration.submit_batch(desk.subscriber_a, profile, [device_csr(random_eui64())] * count)
    assert desk.registration.batches(desk.agent) == []


def test_oversize_batches_are_refused(desk: Desk) -> None:
    small = Registration(desk.registration.database, desk.registration.authority, max_batch=3)
    with pytest.raises(InvalidRequest, match="at most 3"):
        small.submit_batch(desk.subscriber_a, "smki-device", [b"x"] * 4)
    assert desk.registration.batches(desk.agent) == []
