"""Revocation rules in process: which reasons each certificate may be revoked for, holds and their
release, all-or-nothing batches, refusals that write nothing, audit events, and CA revocation under
dual control (the CA goes on its root's ARL and issues nothing more)."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.x509 import ocsp
from sqlalchemy import Connection

from mpki.audit import verify_chain
from mpki.ca import CertificationAuthority
from mpki.domain import END_ENTITY_REASONS, InvalidRequest, NotFound, RevocationReason
from mpki.status import DELTA, FULL, StatusService
from tests.support.status import (
    ca_certificate,
    certificate,
    check_signed_by_responder,
    crl_serials,
    events,
    insert_certificates,
    issue,
    ocsp_request,
    response_status,
    signed_by,
    snapshot,
    successful,
)

R = RevocationReason
AGENT = "ra-agent:alice@example.org"


def flag(reason: RevocationReason) -> x509.ReasonFlags | None:
    """The reason as a CRL entry or OCSP response carries it (none at all for unspecified)."""
    return None if reason is R.UNSPECIFIED else x509.ReasonFlags[reason.name.lower()]


def crl_of(status: StatusService, ca: str, kind: str = FULL) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(status.crls.latest(ca, kind).der)


@pytest.fixture
def status(authority: CertificationAuthority) -> StatusService:
    return StatusService(authority)


# ----- end-entity reasons -----------------------------------------------------------------------------


def test_every_end_entity_reason_is_accepted_and_published(
    authority: CertificationAuthority, status: StatusService
) -> None:
    done = {}
    for reason in sorted(END_ENTITY_REASONS):
        profile = "tls-server" if reason is R.CERTIFICATE_HOLD else "smki-device"
        view = issue(authority, profile)
        outcome = status.revocations.revoke([view.serial], reason, actor=AGENT)
        assert outcome.serials == (view.serial,) and outcome.reason is reason and not outcome.warnings
        assert [p.split("#")[0] for p in outcome.published] == [view.ca, view.ca]
        assert outcome.published[0].endswith("(full)") and outcome.published[1].endswith("(delta)")
        done[view.serial] = (view, reason, outcome.revoked_at)
    for serial, (view, reason, revoked_at) in done.items():
        row = status.revocations.find(serial)
        assert (row.status, row.revocation_reason, row.revoked_by) == ("revoked", reason.value, AGENT)
        assert row.revoked_at == revoked_at
        crl = crl_of(status, view.ca)
        entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
        assert entry is not None and entry.revocation_date_utc == revoked_at
        assert crl_serials(crl)[int(serial, 16)] == flag(reason)
        answer = successful(status.ocsp.answer(ocsp_request(certificate(view), ca_certificate(authority, view.ca))).der)
        assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert answer.revocation_time_utc == revoked_at and answer.revocation_reason == flag(reason)
    device_crl = crl_serials(crl_of(status, "smki-device-ca"))
    assert set(device_crl) == {int(s, 16) for s, (v, _, _) in done.items() if v.ca == "smki-device-ca"}


@pytest.mark.parametrize("reason", [R.CA_COMPROMISE, R.REMOVE_FROM_CRL, R.AA_COMPROMISE])
def test_reasons_not_for_end_entities_are_refused_and_write_nothing(
    authority: CertificationAuthority, status: StatusService, sql: Connection, reason: RevocationReason
) -> None:
    views = [issue(authority, "smki-device"), issue(authority, "tls-client")]
    status.crls.publish("smki-device-ca")
    before = snapshot(sql)
    for view in views:
        with pytest.raises(InvalidRequest, match=f"{reason.rfc_name} is not a reason for an end-entity"):
            status.revocations.revoke([view.serial], reason, actor=AGENT)
    assert snapshot(sql) == before


def test_certificate_hold_only_where_the_profile_allows_it(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    smki = [issue(authority, "smki-org"), issue(authority, "smki-device")]
    before = snapshot(sql)
    for view in smki:
        with pytest.raises(InvalidRequest, match=f"profile {view.profile} does not allow certificateHold"):
            status.revocations.revoke([view.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    assert snapshot(sql) == before
    for profile in ("tls-server", "tls-client"):
        view = issue(authority, profile)
        status.revocations.revoke([view.serial], R.CERTIFICATE_HOLD, actor=AGENT)
        assert status.revocations.find(view.serial).revocation_reason == R.CERTIFICATE_HOLD
        assert crl_serials(crl_of(status, "tls-issuing"))[int(view.serial, 16)] is x509.ReasonFlags.certificate_hold


def test_already_revoked_is_refused_but_a_hold_may_become_permanent(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    device, tls = issue(authority, "smki-device"), issue(authority, "tls-server")
    status.revocations.revoke([device.serial], R.KEY_COMPROMISE, actor=AGENT)
    held = status.revocations.revoke([tls.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    before = snapshot(sql)
    for reason in (R.KEY_COMPROMISE, R.SUPERSEDED, R.UNSPECIFIED):
        with pytest.raises(InvalidRequest, match="already revoked"):
            status.revocations.revoke([device.serial], reason, actor=AGENT)
    with pytest.raises(InvalidRequest, match="already on hold"):
        status.revocations.revoke([tls.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    with pytest.raises(InvalidRequest, match="not on hold"):
        status.revocations.release_hold(device.serial, actor=AGENT)
    assert snapshot(sql) == before

    permanent = status.revocations.revoke([tls.serial], R.KEY_COMPROMISE, actor="ra-agent:bob@example.org")
    row = status.revocations.find(tls.serial)
    assert (row.status, row.revocation_reason, row.revoked_by) == ("revoked", 1, "ra-agent:bob@example.org")
    assert row.revoked_at == permanent.revoked_at >= held.revoked_at
    assert crl_serials(crl_of(status, "tls-issuing")) == {int(tls.serial, 16): x509.ReasonFlags.key_compromise}
    assert crl_serials(crl_of(status, "tls-issuing", DELTA)) == {int(tls.serial, 16): x509.ReasonFlags.key_compromise}
    [previous] = [e for e in events(sql, "certificate.revoked") if e["actor"] == "ra-agent:bob@example.org"]
    assert json.loads(previous["details"])["previous_status"] == "revoked"
    with pytest.raises(InvalidRequest, match="already revoked"):
        status.revocations.revoke([tls.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    with pytest.raises(InvalidRequest, match="not on hold"):
        status.revocations.release_hold(tls.serial, actor=AGENT)


def test_release_hold_reinstates_and_the_delta_says_remove_from_crl(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    view, other = issue(authority, "tls-client"), issue(authority, "tls-server")
    status.revocations.revoke([other.serial], R.SUPERSEDED, actor=AGENT)
    status.revocations.revoke([view.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    issuer = ca_certificate(authority, "tls-issuing")
    request = ocsp_request(certificate(view), issuer)
    assert successful(status.ocsp.answer(request).der).certificate_status is ocsp.OCSPCertStatus.REVOKED

    released = status.revocations.release_hold(view.serial, actor="ra-agent:bob@example.org")
    assert released.reason is R.REMOVE_FROM_CRL and released.serials == (view.serial,) and released.published
    row = status.revocations.find(view.serial)
    assert (row.status, row.revoked_at, row.revocation_reason) == ("issued", None, None)
    assert row.hold_released_at == released.revoked_at
    full = status.crls.latest("tls-issuing")
    delta = status.crls.latest("tls-issuing", DELTA)
    assert crl_serials(x509.load_der_x509_crl(full.der)) == {int(other.serial, 16): x509.ReasonFlags.superseded}
    delta_crl = x509.load_der_x509_crl(delta.der)
    assert delta.base_number == full.number
    assert crl_serials(delta_crl)[int(view.serial, 16)] is x509.ReasonFlags.remove_from_crl
    entry = delta_crl.get_revoked_certificate_by_serial_number(int(view.serial, 16))
    assert entry is not None and entry.revocation_date_utc == released.revoked_at
    assert successful(status.ocsp.answer(request).der).certificate_status is ocsp.OCSPCertStatus.GOOD
    [event] = events(sql, "certificate.hold_released")
    assert (event["actor"], event["serial"], event["ca"]) == ("ra-agent:bob@example.org", view.serial, "tls-issuing")

    before = snapshot(sql)
    with pytest.raises(InvalidRequest, match="not on hold"):
        status.revocations.release_hold(view.serial, actor=AGENT)
    assert snapshot(sql) == before
    # Back on hold later: the released mark is cleared, so the next delta lists the hold, not the release.
    status.revocations.revoke([view.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    assert status.revocations.find(view.serial).hold_released_at is None
    delta_crl = crl_of(status, "tls-issuing", DELTA)
    assert crl_serials(delta_crl)[int(view.serial, 16)] is x509.ReasonFlags.certificate_hold
    assert verify_chain(authority.database).ok


def test_unknown_serials_and_cas_are_not_found_and_write_nothing(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    device = issue(authority, "smki-device")
    before = snapshot(sql)
    with pytest.raises(NotFound, match="no certificate with serial 1234abcd"):
        status.revocations.revoke(["1234ABCD"], R.KEY_COMPROMISE, actor=AGENT)
    with pytest.raises(NotFound):
        status.revocations.release_hold("1234abcd", actor=AGENT)
    with pytest.raises(NotFound):
        status.revocations.find("0x1234abcd")
    with pytest.raises(NotFound):  # the serial exists, but under another CA
        status.revocations.revoke([device.serial], R.KEY_COMPROMISE, actor=AGENT, ca_name="tls-issuing")
    with pytest.raises(NotFound, match="no CA named"):
        status.revocations.revoke([device.serial], R.KEY_COMPROMISE, actor=AGENT, ca_name="no-such-ca")
    with pytest.raises(InvalidRequest, match="not hexadecimal"):
        status.revocations.revoke(["12g4"], R.KEY_COMPROMISE, actor=AGENT)
    with pytest.raises(InvalidRequest, match="at least one"):
        status.revocations.revoke([], R.KEY_COMPROMISE, actor=AGENT)
    assert snapshot(sql) == before
    # The same serial written differently (upper case, colons, 0x) names the same certificate.
    spelled = "0x" + ":".join(device.serial.upper()[i : i + 2] for i in range(0, len(device.serial), 2))
    outcome = status.revocations.revoke([spelled], R.KEY_COMPROMISE, actor=AGENT, ca_name="smki-device-ca")
    assert outcome.serials == (device.serial,)


def test_revoking_several_is_all_or_nothing(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    first, second, tls = issue(authority, "smki-device"), issue(authority, "smki-org"), issue(authority, "tls-server")
    status.revocations.revoke([first.serial], R.KEY_COMPROMISE, actor=AGENT)
    before = snapshot(sql)
    refusals: list[tuple[list[str], RevocationReason, type[Exception], str]] = [
        ([second.serial, tls.serial, "deadbeef"], R.SUPERSEDED, NotFound, "deadbeef"),
        ([second.serial, first.serial], R.SUPERSEDED, InvalidRequest, "already revoked"),
        ([tls.serial, second.serial], R.CERTIFICATE_HOLD, InvalidRequest, "does not allow certificateHold"),
        ([second.serial, tls.serial, second.serial.upper()], R.SUPERSEDED, InvalidRequest, "named twice"),
        ([tls.serial, "xyz"], R.SUPERSEDED, InvalidRequest, "not hexadecimal"),
    ]
    for serials, reason, error, message in refusals:
        with pytest.raises(error, match=message):
            status.revocations.revoke(serials, reason, actor=AGENT)
        assert snapshot(sql) == before, serials

    outcome = status.revocations.revoke([second.serial, tls.serial], R.CESSATION_OF_OPERATION, actor=AGENT)
    assert {p.split("#")[0] for p in outcome.published} == {"smki-org-ca", "tls-issuing"}
    for view in (second, tls):
        assert status.revocations.find(view.serial).status == "revoked"
        assert int(view.serial, 16) in crl_serials(crl_of(status, view.ca))


def test_bulk_revocation_crosses_query_chunks_all_or_nothing(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    serials = insert_certificates(authority, "smki-device-ca", 1001)
    before = snapshot(sql)
    with pytest.raises(NotFound):
        status.revocations.revoke([*serials, "77"], R.PRIVILEGE_WITHDRAWN, actor=AGENT)
    assert snapshot(sql) == before
    outcome = status.revocations.revoke(serials, R.PRIVILEGE_WITHDRAWN, actor=AGENT)
    assert len(outcome.serials) == 1001
    after = snapshot(sql)
    assert {row[1] for row in after["certificates"]} == {"revoked"}
    assert after["audit_events"][0][0] >= before["audit_events"][0][0] + 1001
    crl = crl_of(status, "smki-device-ca")
    assert crl_serials(crl) == {int(s, 16): x509.ReasonFlags.privilege_withdrawn for s in serials}
    assert verify_chain(authority.database).ok


def test_revocation_events_carry_actor_time_and_reason(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    views = [issue(authority, "smki-device"), issue(authority, "tls-server")]
    outcome = status.revocations.revoke(
        [v.serial for v in views], R.AFFILIATION_CHANGED, actor=AGENT, context={"ticket": "INC-7"}
    )
    found = events(sql, "certificate.revoked")
    assert sorted((e["serial"], e["ca"]) for e in found) == sorted((v.serial, v.ca) for v in views)
    for event in found:
        details = json.loads(event["details"])
        assert event["actor"] == AGENT
        assert details["reason"] == "affiliationChanged" and details["previous_status"] == "issued"
        assert details["revoked_at"] == outcome.revoked_at.isoformat() and details["ticket"] == "INC-7"
    published = events(sql, "crl.published")
    assert {e["ca"] for e in published} == {"smki-device-ca", "tls-issuing"} and {e["actor"] for e in published} == {
        AGENT
    }
    result = verify_chain(authority.database)
    assert result.ok and result.events == snapshot(sql)["audit_events"][0][0]


# ----- CA certificates: dual control ---------------------------------------------------------------------


def test_ca_revocation_needs_a_second_person_and_lands_on_the_arl(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    leaf = issue(authority, "smki-org")
    org_ca = authority.get_ca("smki-org-ca")
    root = ca_certificate(authority, "smki-root")
    proposal = status.revocations.propose_ca_revocation("smki-org-ca", R.CA_COMPROMISE, actor="admin:ann")
    assert (proposal.ca, proposal.status, proposal.reason, proposal.requested_by) == (
        "smki-org-ca",
        "pending",
        R.CA_COMPROMISE,
        "admin:ann",
    )
    assert [p.id for p in status.revocations.pending_ca_revocations()] == [proposal.id]
    assert authority.get_ca("smki-org-ca").status == "active"

    before = snapshot(sql)
    with pytest.raises(InvalidRequest, match="dual control"):
        status.revocations.approve_ca_revocation(proposal.id, actor="admin:ann")
    assert snapshot(sql) == before

    outcome = status.revocations.approve_ca_revocation(proposal.id, actor="admin:bob")
    assert outcome.serials == (org_ca.serial,) and outcome.reason is R.CA_COMPROMISE
    assert [p.split("#")[0] for p in outcome.published] == ["smki-root", "smki-root"]
    assert authority.get_ca("smki-org-ca").status == "revoked"
    assert status.revocations.pending_ca_revocations() == []
    with pytest.raises(InvalidRequest, match="is done, not pending"):
        status.revocations.approve_ca_revocation(proposal.id, actor="admin:cat")

    arl = crl_of(status, "smki-root")
    idp = arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert idp.only_contains_ca_certs and not idp.only_contains_user_certs
    assert crl_serials(arl) == {int(org_ca.serial, 16): x509.ReasonFlags.ca_compromise}
    entry = arl.get_revoked_certificate_by_serial_number(int(org_ca.serial, 16))
    assert entry is not None and entry.revocation_date_utc == outcome.revoked_at
    assert int(org_ca.serial, 16) in crl_serials(crl_of(status, "smki-root", DELTA))

    # The root's responder says so too, for the CA certificate.
    ca_cert = x509.load_der_x509_certificate(org_ca.certificate_der)
    answer = successful(status.ocsp.answer(ocsp_request(ca_cert, root)).der)
    check_signed_by_responder(answer, root)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.ca_compromise

    [proposed] = events(sql, "ca.revocation_proposed")
    [revoked] = events(sql, "ca.revoked")
    assert (proposed["actor"], revoked["actor"]) == ("admin:ann", "admin:bob")
    details = json.loads(revoked["details"])
    assert details["proposed_by"] == "admin:ann" and details["reason"] == "cACompromise"
    assert details["arl_of"] == "smki-root" and revoked["serial"] == org_ca.serial
    assert verify_chain(authority.database).ok
    # Its earlier leaf is untouched: the ARL speaks for the CA, not for each certificate below it.
    assert status.revocations.find(leaf.serial).status == "issued"


def test_a_revoked_ca_issues_and_publishes_nothing_more(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    leaf, other_leaf = issue(authority, "smki-org"), issue(authority, "smki-org")
    issuer = ca_certificate(authority, "smki-org-ca")
    request = ocsp_request(certificate(leaf), issuer)
    other_request = ocsp_request(certificate(other_leaf), issuer)
    node = StatusService(authority)  # another serving process
    for service in (status, node):  # both have a good answer for the leaf in memory
        assert successful(service.ocsp.answer(request).der).certificate_status is ocsp.OCSPCertStatus.GOOD
        assert service.ocsp.answer_cached(request) is not None
    proposal = status.revocations.propose_ca_revocation("smki-org-ca", R.KEY_COMPROMISE, actor="admin:ann")
    status.revocations.approve_ca_revocation(proposal.id, actor="admin:bob")
    with pytest.raises(InvalidRequest, match="no active CA issues profile 'smki-org'"):
        issue(authority, "smki-org")
    assert "smki-org-ca" not in {name for name, _ in status.crls.due()}
    report = status.maintain()
    assert "smki-org-ca" not in report.responders_issued
    assert "smki-org-ca" not in {crl.ca for crl in report.crls_published}
    # Its responder no longer vouches for its certificates (not even from memory), and it signs no new
    # responder certificate for a request it has no answer for yet.
    for der in (request, other_request):
        assert status.ocsp.answer_cached(der) is None
        assert response_status(status.ocsp.answer(der).der) is ocsp.OCSPResponseStatus.UNAUTHORIZED
    [revoked] = events(sql, "ca.revoked")
    responders = events(sql, "ocsp.responder.issued")
    assert [e for e in responders if e["ca"] == "smki-org-ca" and e["seq"] > revoked["seq"]] == []
    # Another node learns of it at its next poll.
    node.ocsp.poll_changes()
    assert node.ocsp.answer_cached(request) is None
    assert response_status(node.ocsp.answer(request).der) is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_a_tls_issuing_ca_goes_on_the_tls_root_arl(authority: CertificationAuthority, status: StatusService) -> None:
    tls_ca = authority.get_ca("tls-issuing")
    proposal = status.revocations.propose_ca_revocation("tls-issuing", R.KEY_COMPROMISE, actor="admin:ann")
    status.revocations.approve_ca_revocation(proposal.id, actor="admin:bob")
    arl = crl_of(status, "tls-root")
    assert crl_serials(arl) == {int(tls_ca.serial, 16): x509.ReasonFlags.key_compromise}
    assert signed_by(arl, ca_certificate(authority, "tls-root"))
    assert crl_serials(x509.load_der_x509_crl(status.crls.publish("smki-root").der)) == {}
    with pytest.raises(InvalidRequest):
        issue(authority, "tls-server")


def test_ca_revocation_refusals_write_nothing(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    before = snapshot(sql)
    for root in ("smki-root", "tls-root"):
        with pytest.raises(InvalidRequest, match="is a root"):
            status.revocations.propose_ca_revocation(root, R.KEY_COMPROMISE, actor="admin:ann")
    for reason in (R.CERTIFICATE_HOLD, R.REMOVE_FROM_CRL, R.AA_COMPROMISE):
        with pytest.raises(InvalidRequest, match="not a reason for a CA certificate"):
            status.revocations.propose_ca_revocation("smki-device-ca", reason, actor="admin:ann")
    with pytest.raises(NotFound):
        status.revocations.propose_ca_revocation("no-such-ca", R.KEY_COMPROMISE, actor="admin:ann")
    for action in (status.revocations.approve_ca_revocation, status.revocations.withdraw_ca_revocation):
        with pytest.raises(NotFound, match="no CA revocation proposal 999"):
            action(999, actor="admin:bob")
    assert snapshot(sql) == before


def test_one_pending_proposal_per_ca_and_withdrawal(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    first = status.revocations.propose_ca_revocation("smki-device-ca", R.SUPERSEDED, actor="admin:ann")
    other = status.revocations.propose_ca_revocation("tls-issuing", R.CESSATION_OF_OPERATION, actor="admin:cat")
    before = snapshot(sql)
    with pytest.raises(InvalidRequest, match="already waiting for approval"):
        status.revocations.propose_ca_revocation("smki-device-ca", R.KEY_COMPROMISE, actor="admin:bob")
    assert snapshot(sql) == before
    assert [(p.id, p.ca) for p in status.revocations.pending_ca_revocations()] == [
        (first.id, "smki-device-ca"),
        (other.id, "tls-issuing"),
    ]

    withdrawn = status.revocations.withdraw_ca_revocation(first.id, actor="admin:bob")
    assert withdrawn.status == "withdrawn"
    assert [p.id for p in status.revocations.pending_ca_revocations()] == [other.id]
    for action in (status.revocations.approve_ca_revocation, status.revocations.withdraw_ca_revocation):
        with pytest.raises(InvalidRequest, match="is withdrawn, not pending"):
            action(first.id, actor="admin:cat")
    assert authority.get_ca("smki-device-ca").status == "active"
    [event] = events(sql, "ca.revocation_withdrawn")
    assert event["actor"] == "admin:bob" and json.loads(event["details"]) == {"proposal": first.id}

    again = status.revocations.propose_ca_revocation("smki-device-ca", R.KEY_COMPROMISE, actor="admin:bob")
    status.revocations.approve_ca_revocation(again.id, actor="admin:ann")
    with pytest.raises(InvalidRequest, match="already revoked"):
        status.revocations.propose_ca_revocation("smki-device-ca", R.KEY_COMPROMISE, actor="admin:cat")
    assert verify_chain(authority.database).ok
    assert [p.id for p in status.revocations.pending_ca_revocations()] == [other.id]
