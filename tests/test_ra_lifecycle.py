"""Renewal, re-key and update of a certificate; approval rules per organisation, dual control."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mpki.ca import CertificationAuthority
from mpki.domain import Forbidden, InvalidRequest, Role
from mpki.ra import OPERATOR, Directory, Principal
from mpki.ra.intake import Registration
from tests.csr_factory import device_csr, ec_key, org_csr, random_eui64

EUI = bytes.fromhex("90B3D51F30010000")


@dataclass
class World:
    directory: Directory
    desk: Registration
    authority: CertificationAuthority
    subscriber: Principal
    agent: Principal
    second_agent: Principal
    outsider: Principal


@pytest.fixture
def world(authority: CertificationAuthority) -> Iterator[World]:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, "Org A", [EUI.hex()], ["supplier"])
    directory.create_organisation(OPERATOR, "Org B", ["90B3D51F30020000"], ["supplier"])
    principals = []
    for email, role, org in [
        ("sub@a.test", Role.AUTHORISED_SUBSCRIBER, "Org A"),
        ("agent1@p.test", Role.RA_AGENT, None),
        ("agent2@p.test", Role.RA_AGENT, None),
        ("sub@b.test", Role.AUTHORISED_SUBSCRIBER, "Org B"),
    ]:
        directory.create_person(OPERATOR, email, role, org)
        principals.append(directory.authenticate(directory.create_token(OPERATOR, email)))
    yield World(directory, Registration(authority.database, authority), authority, *principals)


def _one(world: World, principal: Principal, profile: str, csr: bytes, **kwargs: str) -> tuple[int, str, str | None]:
    batch = world.desk.submit_batch(principal, profile, [csr], **kwargs)
    world.desk.process_batch(batch.id)
    [item] = world.desk.batch(principal, batch.id)[1]
    return item.id, item.status, item.serial if item.status == "issued" else item.reason


def test_rekey_replaces_a_device_certificate_without_a_duplicate_hold(world: World) -> None:
    eui = random_eui64()
    _, status, old = _one(world, world.subscriber, "smki-device", device_csr(eui))
    assert status == "issued" and old
    _, status, new = _one(world, world.subscriber, "smki-device", device_csr(eui), kind="rekey", replaces=old)
    assert status == "issued", new
    assert world.authority.find_certificate(old).status == "superseded"
    assert world.authority.find_certificate(new or "").status == "issued"
    # A fresh request for the same device is still held: the duplicate check is not weakened.
    _, status, reason = _one(world, world.subscriber, "smki-device", device_csr(eui))
    assert status == "pending" and "duplicate device check" in (reason or "")


def test_renewal_keeps_the_key_and_devices_do_not_renew(world: World) -> None:
    key = ec_key()
    request_id, status, _ = _one(world, world.subscriber, "smki-org", org_csr(EUI, role="02", key=key))
    assert status == "pending"
    old = world.desk.decide(world.agent, request_id, True).serial or ""
    request_id, status, _ = _one(
        world, world.subscriber, "smki-org", org_csr(EUI, role="02", key=key), kind="renewal", replaces=old
    )
    assert status == "pending"  # organisation certificates are reviewed, renewals too
    renewed = world.desk.decide(world.agent, request_id, True)
    assert renewed.status == "issued"
    assert world.authority.find_certificate(old).status == "superseded"
    _, status, reason = _one(
        world, world.subscriber, "smki-org", org_csr(EUI, role="02"), kind="renewal", replaces=renewed.serial or ""
    )
    assert status == "rejected" and "keeps the certified key" in (reason or "")

    eui = random_eui64()
    _, _, device_serial = _one(world, world.subscriber, "smki-device", device_csr(eui))
    _, status, reason = _one(
        world, world.subscriber, "smki-device", device_csr(eui), kind="renewal", replaces=device_serial or ""
    )
    assert status == "rejected" and "never expire" in (reason or "")


def test_update_always_waits_for_review_and_replacements_stay_in_their_organisation(world: World) -> None:
    eui = random_eui64()
    _, _, old = _one(world, world.subscriber, "smki-device", device_csr(eui))
    _, status, reason = _one(
        world, world.subscriber, "smki-device", device_csr(eui, usage="keyAgreement"), kind="update", replaces=old or ""
    )
    assert status == "pending" and "RA review" in (reason or "")
    _, status, reason = _one(world, world.outsider, "smki-device", device_csr(eui), kind="rekey", replaces=old or "")
    assert status == "rejected" and "not issued to Org B" in (reason or "")
    _, status, reason = _one(
        world, world.subscriber, "smki-device", device_csr(random_eui64()), kind="rekey", replaces=old or ""
    )
    assert status == "rejected" and "keeps the identity" in (reason or "")
    with pytest.raises(InvalidRequest, match="name the certificate"):
        world.desk.submit_batch(world.subscriber, "smki-device", [device_csr(eui)], kind="rekey")
    with pytest.raises(InvalidRequest, match="one CSR"):
        world.desk.submit_batch(
            world.subscriber, "smki-device", [device_csr(eui), device_csr(eui)], kind="rekey", replaces=old
        )


def test_dual_control_needs_two_different_approvers(world: World) -> None:
    assert world.directory.set_approval_rule(OPERATOR, "Org A", "smki-org", "dual") == {"smki-org": "dual"}
    request_id, status, reason = _one(world, world.subscriber, "smki-org", org_csr(EUI, role="02"))
    assert status == "pending" and "two RA approvals" in (reason or "")
    first = world.desk.decide(world.agent, request_id, True)
    assert first.status == "pending" and "awaiting a second approver" in (first.reason or "")
    with pytest.raises(Forbidden, match="second, different approver"):
        world.desk.decide(world.agent, request_id, True)
    assert world.desk.decide(world.second_agent, request_id, True).status == "issued"


def test_review_rule_for_devices_and_bad_rules(world: World) -> None:
    world.directory.set_approval_rule(OPERATOR, "Org A", "smki-device", "review")
    _, status, reason = _one(world, world.subscriber, "smki-device", device_csr(random_eui64()))
    assert status == "pending" and reason == "awaiting RA agent approval"
    with pytest.raises(InvalidRequest):
        world.directory.set_approval_rule(OPERATOR, "Org A", "smki-device", "sometimes")
    with pytest.raises(InvalidRequest):
        world.directory.set_approval_rule(OPERATOR, "Org A", "smki-root", "auto")
    with pytest.raises(Forbidden):
        world.directory.set_approval_rule(world.subscriber, "Org A", "smki-device", "auto")
