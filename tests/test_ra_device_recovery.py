"""A device flagged by a device-key-compromise recovery re-enrols only with an RA agent's approval.

The flag is set up directly through the store (the recovery procedure itself is tested with the
recovery room); here the RA's side: the hold, the rejection, the approval that clears the flag and
supersedes the certificates marked not in use, and that nothing else is held by it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from mpki.audit import verify_chain
from mpki.ca import CertificationAuthority
from mpki.domain import Forbidden, Role, utcnow
from mpki.ra import OPERATOR, Directory, Principal
from mpki.ra.intake import Registration
from mpki.ra.review import ReviewDesk
from mpki.store import (
    AuditRepository,
    CertificateRepository,
    DeviceFlagRepository,
    RecoveryCertificates,
    RecoveryRecord,
    RecoveryRepository,
)
from tests.csr_factory import device_csr, random_eui64

ORG_EUI = "90B3D51F30010000"


@dataclass
class Desk:
    authority: CertificationAuthority
    registration: Registration
    subscriber: Principal
    agent: Principal

    def submit(self, *csrs: bytes) -> list[tuple[int, str, str | None, str | None]]:
        """(request id, status, hold or rejection reason, serial) per CSR, after processing."""
        batch = self.registration.submit_batch(self.subscriber, "smki-device", list(csrs))
        self.registration.process_batch(batch.id)
        return [(i.id, i.status, i.reason, i.serial) for i in self.registration.batch(self.subscriber, batch.id)[1]]

    def issued(self, eui: bytes, usage: str = "digitalSignature") -> str:
        [(_, status, reason, serial)] = self.submit(device_csr(eui, usage))
        assert status == "issued", reason
        assert serial is not None
        return serial


@pytest.fixture
def desk(authority: CertificationAuthority) -> Iterator[Desk]:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, "Org A", [ORG_EUI], ["supplier"])
    principals = []
    for email, role, org in [
        ("sub@a.test", Role.AUTHORISED_SUBSCRIBER, "Org A"),
        ("agent@p.test", Role.RA_AGENT, None),
    ]:
        directory.create_person(OPERATOR, email, role, org)
        principals.append(directory.authenticate(directory.create_token(OPERATOR, email)))
    # Device requests of Org A approve themselves (the service default): the flag must override that.
    assert directory.set_approval_rule(OPERATOR, "Org A", "smki-device", "auto") == {"smki-device": "auto"}
    yield Desk(authority, Registration(authority.database, authority), *principals)


def flag_device(authority: CertificationAuthority, eui: bytes) -> int:
    """What the device-key-compromise procedure leaves behind: a completed record, the flag, and the
    device's live certificates marked not in use. Returns the recovery id."""
    now = utcnow()
    with authority.database.transaction() as session:
        record = RecoveryRepository(session).add(
            RecoveryRecord(
                scenario="device",
                subject=eui.hex().upper(),
                parameters=json.dumps({"eui64": [eui.hex().upper()]}),
                status="completed",
                proposed_by="officer-1",
                proposed_at=now,
                approved_by="officer-2",
                approved_at=now,
                completed_at=now,
                outcome="flagged",
            )
        )
        DeviceFlagRepository(session).flag([eui.hex().upper()], record.id, now)
        certificates = RecoveryCertificates(session)
        live = certificates.live_of_devices([eui.hex().upper()], "smki-device")
        assert live, "the device should have a live certificate to mark"
        certificates.mark_not_in_use([row.id for row in live], now)
        return record.id


def flags(authority: CertificationAuthority, recovery: int) -> list[tuple[str, str, str | None]]:
    """(EUI-64, status, replacement serial) of the recovery's flags."""
    with authority.database.reader() as session:
        return [
            (row.eui64, row.status, row.replacement_serial)
            for row in DeviceFlagRepository(session).of_recovery(recovery)
        ]


def certificate(authority: CertificationAuthority, serial: str) -> tuple[str, bool]:
    """(status, marked not in use) of a stored certificate."""
    with authority.database.reader() as session:
        row = CertificateRepository(session).by_serial(serial)
        return row.status, row.not_in_use_at is not None


def events(authority: CertificationAuthority, action: str) -> list[dict[str, Any]]:
    with authority.database.reader() as session:
        return [
            {"actor": e.actor, "serial": e.serial, "request_id": e.request_id, **json.loads(e.details)}
            for e in AuditRepository(session).by_action(action)
        ]


def test_a_flagged_device_is_held_even_under_auto_approval_and_nothing_else_is(desk: Desk) -> None:
    flagged, other, unflagged = random_eui64(), random_eui64(), random_eui64()
    old = desk.issued(flagged)
    desk.issued(unflagged)
    recovery = flag_device(desk.authority, flagged)

    results = desk.submit(device_csr(flagged), device_csr(other), device_csr(unflagged))
    (held_id, held, held_reason, _), (_, fresh, _, _), (_, duplicate, duplicate_reason, _) = results
    assert held == "pending"
    assert held_reason == (
        f"device EUI-64 {flagged.hex().upper()} was flagged by recovery {recovery} (device key compromise): "
        "re-enrolment needs RA approval"
    )
    assert fresh == "issued"  # another device in the same batch is not held by the flag
    assert duplicate == "pending" and "duplicate device check" in (duplicate_reason or "")
    assert "flagged" not in (duplicate_reason or "")
    # Holding wrote nothing to the flag or to the old certificate.
    assert flags(desk.authority, recovery) == [(flagged.hex().upper(), "flagged", None)]
    assert certificate(desk.authority, old) == ("issued", True)
    assert events(desk.authority, "device.re_enrolled") == []

    review = ReviewDesk(desk.authority.database).review(desk.agent, held_id)
    assert review.flagged_by_recovery == recovery and review.hold_reason == held_reason
    assert ReviewDesk(desk.authority.database).review(desk.agent, results[2][0]).flagged_by_recovery is None


def test_two_requests_for_the_flagged_device_clear_the_flag_once(desk: Desk) -> None:
    eui = random_eui64()
    old = desk.issued(eui)
    recovery = flag_device(desk.authority, eui)
    [(first_id, first, first_reason, _), (second_id, second, second_reason, _)] = desk.submit(
        device_csr(eui), device_csr(eui)
    )
    assert (first, second) == ("pending", "pending")
    assert first_reason == second_reason and f"flagged by recovery {recovery}" in (first_reason or "")
    # The agent sees the other request in flight for the same device.
    review = ReviewDesk(desk.authority.database).review(desk.agent, second_id)
    assert [line.id for line in review.conflicting_requests] == [first_id]

    first_serial = desk.registration.decide(desk.agent, first_id, True).serial
    assert desk.registration.decide(desk.agent, second_id, True).status == "issued"
    assert flags(desk.authority, recovery) == [(eui.hex().upper(), "re-enrolled", first_serial)]
    [event] = events(desk.authority, "device.re_enrolled")
    assert event["request_id"] == first_id and event["superseded"] == [old]


def test_a_rejection_leaves_the_flag(desk: Desk) -> None:
    eui = random_eui64()
    old = desk.issued(eui)
    recovery = flag_device(desk.authority, eui)
    [(request_id, _, _, _)] = desk.submit(device_csr(eui))

    with pytest.raises(Forbidden):  # the subscriber may not decide its own re-enrolment
        desk.registration.decide(desk.subscriber, request_id, True)
    assert desk.registration.decide(desk.agent, request_id, False, "device not yet repaired").status == "rejected"
    assert flags(desk.authority, recovery) == [(eui.hex().upper(), "flagged", None)]
    assert certificate(desk.authority, old) == ("issued", True)
    assert events(desk.authority, "device.re_enrolled") == []
    # The next attempt is held again for the same reason.
    [(_, status, reason, _)] = desk.submit(device_csr(eui))
    assert status == "pending" and f"flagged by recovery {recovery}" in (reason or "")


def test_approval_issues_clears_the_flag_and_supersedes_what_was_not_in_use(desk: Desk) -> None:
    eui, bystander = random_eui64(), random_eui64()
    signing = desk.issued(eui)
    agreement = desk.issued(eui, "keyAgreement")
    desk.issued(bystander)
    recovery = flag_device(desk.authority, eui)
    bystander_recovery = flag_device(desk.authority, bystander)
    [(request_id, _, _, _)] = desk.submit(device_csr(eui))

    approved = desk.registration.decide(desk.agent, request_id, True)
    assert approved.status == "issued" and approved.serial
    new = approved.serial
    assert certificate(desk.authority, new) == ("issued", False)
    assert flags(desk.authority, recovery) == [(eui.hex().upper(), "re-enrolled", new)]
    assert certificate(desk.authority, signing) == ("superseded", True)
    assert certificate(desk.authority, agreement) == ("superseded", True)
    # Another flagged device is untouched.
    assert flags(desk.authority, bystander_recovery) == [(bystander.hex().upper(), "flagged", None)]

    [event] = events(desk.authority, "device.re_enrolled")
    assert event["actor"] == desk.agent.actor and event["serial"] == new and event["request_id"] == request_id
    assert event["eui64"] == eui.hex().upper() and event["recovery"] == recovery and event["new_serial"] == new
    assert sorted(event["superseded"]) == sorted([signing, agreement])
    superseded = {e["serial"]: e for e in events(desk.authority, "certificate.superseded")}
    assert set(superseded) == {signing, agreement}
    assert all(e["superseded_by"] == new for e in superseded.values())
    assert verify_chain(desk.authority.database).ok

    # Afterwards the device follows the normal duplicate rule: held as a duplicate of its new certificate.
    [(_, status, reason, _)] = desk.submit(device_csr(eui))
    assert status == "pending" and "duplicate device check" in (reason or "") and "flagged" not in (reason or "")
    # ... and its other usage, whose old certificate is superseded, is issued under the usual rule.
    [(_, status, reason, _)] = desk.submit(device_csr(eui, "keyAgreement"))
    assert status == "issued", reason
    assert len(events(desk.authority, "device.re_enrolled")) == 1


def test_an_unflagged_device_re_enrolling_is_unaffected(desk: Desk) -> None:
    eui = random_eui64()
    old = desk.issued(eui)
    [(request_id, status, reason, _)] = desk.submit(device_csr(eui))
    assert status == "pending" and "duplicate device check" in (reason or "")
    approved = desk.registration.decide(desk.agent, request_id, True)
    assert approved.status == "issued"
    # Approving a duplicate supersedes nothing and records no re-enrolment.
    assert certificate(desk.authority, old) == ("issued", False)
    assert events(desk.authority, "device.re_enrolled") == []
