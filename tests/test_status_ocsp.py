"""The OCSP service in process: good, revoked and unknown answers with every check a relying party makes,
CertIDs and nonces echoed, several certificates in one request, refusals, pre-signing and caching (in
this process and in another node's), responder rotation, and an inactive keystore."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection, text

from mpki.asn1.ocsp import MAX_CERTIFICATES_PER_REQUEST, CertId, SingleStatus
from mpki.ca import CertificationAuthority, IssuedView
from mpki.ca.ocsp import OcspSigner
from mpki.domain import KeyStoreError, RevocationReason, utcnow
from mpki.status import StatusService
from tests.support.status import (
    ca_certificate,
    cert_id,
    certificate,
    check_cert_id,
    check_signed_by_responder,
    inactive_node,
    insert_certificates,
    issue,
    multi_request,
    nonce_of,
    nonce_value,
    ocsp_request,
    request_by_hash,
    response_status,
    snapshot,
    status_with,
    successful,
)

R = RevocationReason
S = ocsp.OCSPResponseStatus
GOOD, REVOKED, UNKNOWN = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN
AGENT = "ra-agent:alice@example.org"


@pytest.fixture
def status(authority: CertificationAuthority) -> StatusService:
    return StatusService(authority)


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many OCSP responses were signed (one entry per call, the number of certificates in it)."""
    calls: list[int] = []
    original = OcspSigner.sign

    def counting(self: OcspSigner, answers: list[Any], **kwargs: Any) -> bytes:
        calls.append(len(answers))
        return original(self, answers, **kwargs)

    original_each = OcspSigner.sign_each

    def counting_each(self: OcspSigner, answers: list[Any], produced_at: Any) -> list[bytes]:
        calls.extend(1 for _ in answers)  # pre-signing: one response per certificate, signed in one batch
        return original_each(self, answers, produced_at)

    monkeypatch.setattr(OcspSigner, "sign", counting)
    monkeypatch.setattr(OcspSigner, "sign_each", counting_each)
    yield calls


def stored_response(sql: Connection, serial: str) -> bytes:
    return bytes(sql.execute(text("SELECT der FROM ocsp_responses WHERE serial = :s"), {"s": serial}).scalar_one())


def sha1_and_sha256(view: IssuedView, issuer: x509.Certificate) -> list[bytes]:
    """Requests for one certificate, with SHA-1 and with SHA-256 CertIDs."""
    return [ocsp_request(certificate(view), issuer, algorithm) for algorithm in (hashes.SHA1(), hashes.SHA256())]


def foreign_ca() -> tuple[x509.Certificate, int]:
    """A CA this installation does not know, and a serial under it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Elsewhere CA")])
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, 12345


# ----- answers ------------------------------------------------------------------------------------------


def test_good_revoked_and_unknown(authority: CertificationAuthority, status: StatusService) -> None:
    view = issue(authority, "smki-device")
    issuer = ca_certificate(authority, "smki-device-ca")
    cert = certificate(view)
    request = ocsp_request(cert, issuer)

    answer = status.ocsp.answer(request)
    good = successful(answer.der)
    responder = check_signed_by_responder(good, issuer)
    check_cert_id(good, issuer, cert.serial_number)
    assert good.certificate_status is GOOD and good.revocation_time_utc is None
    now = utcnow()
    assert good.next_update_utc is not None and good.this_update_utc <= now < good.next_update_utc
    assert good.next_update_utc - good.this_update_utc == dt.timedelta(hours=72)  # ocsp_next_update_hours
    assert responder.not_valid_after_utc <= issuer.not_valid_after_utc
    assert 0 < answer.max_age <= 12 * 3600
    assert nonce_of(good) is None

    outcome = status.revocations.revoke([view.serial], R.KEY_COMPROMISE, actor=AGENT)
    revoked = successful(status.ocsp.answer(request).der)
    check_signed_by_responder(revoked, issuer)
    check_cert_id(revoked, issuer, cert.serial_number)
    assert revoked.certificate_status is REVOKED
    assert revoked.revocation_time_utc == outcome.revoked_at
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise

    plain = issue(authority, "smki-device")
    status.revocations.revoke([plain.serial], R.UNSPECIFIED, actor=AGENT)
    unspecified = successful(status.ocsp.answer(ocsp_request(certificate(plain), issuer)).der)
    assert unspecified.certificate_status is REVOKED and unspecified.revocation_reason is None

    unknown = successful(status.ocsp.answer(request_by_hash(issuer, 0x1234ABCD)).der)
    check_signed_by_responder(unknown, issuer)
    check_cert_id(unknown, issuer, 0x1234ABCD)
    assert unknown.certificate_status is UNKNOWN


def test_sha256_cert_ids_are_answered_with_sha256(authority: CertificationAuthority, status: StatusService) -> None:
    view = issue(authority, "tls-server")
    issuer = ca_certificate(authority, "tls-issuing")
    cert = certificate(view)
    request = ocsp_request(cert, issuer, hashes.SHA256())
    response = successful(status.ocsp.answer(request).der)
    check_signed_by_responder(response, issuer)
    check_cert_id(response, issuer, cert.serial_number, "sha256")
    assert response.certificate_status is GOOD
    status.revocations.revoke([view.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    held = successful(status.ocsp.answer(request).der)
    check_cert_id(held, issuer, cert.serial_number, "sha256")
    assert held.revocation_reason is x509.ReasonFlags.certificate_hold


@pytest.mark.parametrize("size", [1, 16, 32])
def test_nonce_is_echoed_and_never_cached(authority: CertificationAuthority, status: StatusService, size: int) -> None:
    view = issue(authority, "smki-org")
    issuer = ca_certificate(authority, "smki-org-ca")
    cert = certificate(view)
    nonce = bytes(range(1, size + 1))
    request = ocsp_request(cert, issuer, nonce=nonce)
    first = successful(status.ocsp.answer(request).der)
    check_signed_by_responder(first, issuer)
    check_cert_id(first, issuer, cert.serial_number)
    assert nonce_of(first) == nonce and first.certificate_status is GOOD
    assert status.ocsp.answer_cached(request) is None
    other = bytes(reversed(nonce)) + b"!" if size < 32 else b"?" * 32
    second = successful(status.ocsp.answer(ocsp_request(cert, issuer, nonce=other)).der)
    assert nonce_of(second) == other


@pytest.mark.parametrize("size", [0, 33])
def test_nonce_of_0_or_33_octets_is_malformed(
    authority: CertificationAuthority, status: StatusService, size: int
) -> None:
    view = issue(authority, "smki-device")
    issuer = ca_certificate(authority, "smki-device-ca")
    request = ocsp_request(certificate(view), issuer, nonce=b"n" * size)
    assert response_status(status.ocsp.answer(request).der) is S.MALFORMED_REQUEST
    assert status.ocsp.answer_cached(request) is None
    several = multi_request(
        [cert_id(issuer, int(view.serial, 16)), cert_id(issuer, 99)], nonce_value=nonce_value(b"n" * size)
    )
    assert response_status(status.ocsp.answer(several).der) is S.MALFORMED_REQUEST


def test_several_certificates_get_one_single_response_each_in_order(
    authority: CertificationAuthority, status: StatusService
) -> None:
    issuer = ca_certificate(authority, "smki-device-ca")
    good, revoked = issue(authority, "smki-device"), issue(authority, "smki-device")
    outcome = status.revocations.revoke([revoked.serial], R.SUPERSEDED, actor=AGENT)
    serials = [int(revoked.serial, 16), 0x42, int(good.serial, 16)]
    for algorithm in ("sha1", "sha256"):
        nonce = algorithm.encode() * 4
        request = multi_request([cert_id(issuer, s, algorithm) for s in serials], nonce_value=nonce_value(nonce))
        response = successful(status.ocsp.answer(request).der)
        check_signed_by_responder(response, issuer)
        assert nonce_of(response) == nonce
        singles = list(response.responses)
        assert len(singles) == 3
        for single, serial in zip(singles, serials, strict=True):
            check_cert_id(single, issuer, serial, algorithm)
            assert single.next_update_utc is not None and single.this_update_utc <= utcnow() < single.next_update_utc
        assert [s.certificate_status for s in singles] == [REVOKED, UNKNOWN, GOOD]
        assert singles[0].revocation_time_utc == outcome.revoked_at
        assert singles[0].revocation_reason is x509.ReasonFlags.superseded
    # Without a nonce too, and as many as the limit allows.
    many = [cert_id(issuer, int(good.serial, 16))] * MAX_CERTIFICATES_PER_REQUEST
    response = successful(status.ocsp.answer(multi_request(many)).der)
    assert len(list(response.responses)) == MAX_CERTIFICATES_PER_REQUEST and nonce_of(response) is None
    too_many = multi_request([*many, cert_id(issuer, 5)])
    assert response_status(status.ocsp.answer(too_many).der) is S.MALFORMED_REQUEST


def test_requests_outside_one_known_issuer_are_unauthorized(
    authority: CertificationAuthority, status: StatusService
) -> None:
    device, tls = issue(authority, "smki-device"), issue(authority, "tls-server")
    device_ca, tls_ca = ca_certificate(authority, "smki-device-ca"), ca_certificate(authority, "tls-issuing")
    mixed = multi_request([cert_id(device_ca, int(device.serial, 16)), cert_id(tls_ca, int(tls.serial, 16))])
    assert response_status(status.ocsp.answer(mixed).der) is S.UNAUTHORIZED
    elsewhere, serial = foreign_ca()
    assert response_status(status.ocsp.answer(request_by_hash(elsewhere, serial)).der) is S.UNAUTHORIZED
    half_known = multi_request([cert_id(device_ca, int(device.serial, 16)), cert_id(elsewhere, serial)])
    assert response_status(status.ocsp.answer(half_known).der) is S.UNAUTHORIZED
    # The right key hash with another issuer's name hash names no CA of ours, even once the answer is cached.
    _, _, key_hash, number = cert_id(device_ca, int(device.serial, 16))
    wrong_name = multi_request([("sha1", cert_id(tls_ca, 1)[1], key_hash, number)])
    assert response_status(status.ocsp.answer(wrong_name).der) is S.UNAUTHORIZED
    successful(status.ocsp.answer(ocsp_request(certificate(device), device_ca)).der)
    assert status.ocsp.answer_cached(wrong_name) is None
    assert response_status(status.ocsp.answer(wrong_name).der) is S.UNAUTHORIZED


def test_garbage_is_a_malformed_request(authority: CertificationAuthority, status: StatusService) -> None:
    view = issue(authority, "smki-device")
    issuer = ca_certificate(authority, "smki-device-ca")
    good = ocsp_request(certificate(view), issuer)
    status.ocsp.answer(good)  # warm the cache: garbage must not be answered from it either
    crl = status.crls.publish("smki-device-ca").der
    garbage = {
        "empty": b"",
        "one zero": b"\x00",
        "text": b"GET / HTTP/1.1\r\n",
        "truncated": good[:-3],
        "trailing byte": good + b"\x00",
        "a response": status.ocsp.answer(good).der,
        "a CRL": crl,
        "empty SEQUENCE": b"\x30\x00",
        "no certificates": multi_request([]),
        "negative serial": multi_request([cert_id(issuer, -int(view.serial, 16))]),
        "MD5 CertID": multi_request([cert_id(issuer, int(view.serial, 16), "md5")]),
        "MD5 CertIDs": multi_request([cert_id(issuer, 1, "md5"), cert_id(issuer, 2, "md5")]),
    }
    for name, der in garbage.items():
        assert status.ocsp.answer_cached(der) is None, name
        assert response_status(status.ocsp.answer(der).der) is S.MALFORMED_REQUEST, name


# ----- pre-signing and caches ---------------------------------------------------------------------------


def test_presign_signs_each_certificate_once_and_the_cache_serves_without_signing(
    authority: CertificationAuthority, status: StatusService, sql: Connection, signatures: list[int]
) -> None:
    views = [issue(authority, p) for p in ("smki-device", "smki-device", "smki-org", "tls-server", "tls-client")]
    signed = status.ocsp.presign()
    subordinate_cas = 3  # smki-org-ca and smki-device-ca under smki-root, tls-issuing under tls-root
    assert signed == len(views) + subordinate_cas == len(signatures) and set(signatures) == {1}
    assert status.ocsp.presign() == 0
    assert status.ocsp.presign("tls-issuing") == 0
    status.revocations.revoke([views[1].serial], R.KEY_COMPROMISE, actor=AGENT)  # re-signed and stored at once
    assert len(signatures) == signed + 1
    assert status.ocsp.presign() == 0
    rows = sql.execute(text("SELECT serial, status FROM ocsp_responses"))
    stored = {str(serial): str(state) for serial, state in rows}
    assert len(stored) == signed
    assert stored[views[1].serial] == "revoked" and stored[views[0].serial] == "good"

    signatures.clear()
    for view in views:
        request = ocsp_request(certificate(view), ca_certificate(authority, view.ca))
        presigned = stored_response(sql, view.serial)
        assert status.ocsp.answer(request).der == presigned
        cached = status.ocsp.answer_cached(request)
        assert cached is not None and cached.der == presigned and cached.max_age > 0
    assert signatures == []
    assert successful(stored_response(sql, views[1].serial)).certificate_status is REVOKED

    # Another serving process starts with the stored responses in memory.
    other = StatusService(authority)
    assert other.ocsp.warm() == signed
    for view in views:
        cached = other.ocsp.answer_cached(ocsp_request(certificate(view), ca_certificate(authority, view.ca)))
        assert cached is not None and cached.der == stored_response(sql, view.serial)
    assert signatures == []


def test_a_revocation_changes_the_cached_answer_at_once(
    authority: CertificationAuthority, status: StatusService
) -> None:
    view = issue(authority, "tls-client")
    issuer = ca_certificate(authority, "tls-issuing")
    requests = sha1_and_sha256(view, issuer)
    for request in requests:
        assert successful(status.ocsp.answer(request).der).certificate_status is GOOD
        assert status.ocsp.answer_cached(request) is not None

    def now_says(expected: ocsp.OCSPCertStatus) -> None:
        for request in requests:
            cached = status.ocsp.answer_cached(request)
            assert cached is None or successful(cached.der).certificate_status is expected
            assert successful(status.ocsp.answer(request).der).certificate_status is expected

    status.revocations.revoke([view.serial], R.CERTIFICATE_HOLD, actor=AGENT)
    now_says(REVOKED)
    status.revocations.release_hold(view.serial, actor=AGENT)
    now_says(GOOD)
    status.revocations.revoke([view.serial], R.KEY_COMPROMISE, actor=AGENT)
    now_says(REVOKED)


def test_another_node_serves_its_cached_answer_until_it_polls(
    authority: CertificationAuthority, status: StatusService
) -> None:
    view = issue(authority, "smki-device")
    issuer = ca_certificate(authority, "smki-device-ca")
    requests = sha1_and_sha256(view, issuer)
    status.ocsp.presign()
    other = StatusService(authority)  # another serving process, its own memory
    old = [other.ocsp.answer(request).der for request in requests]
    assert all(successful(der).certificate_status is GOOD for der in old)
    assert other.ocsp.poll_changes() == 0

    status.revocations.revoke([view.serial], R.KEY_COMPROMISE, actor=AGENT)
    for request, der in zip(requests, old, strict=True):
        cached = other.ocsp.answer_cached(request)
        assert cached is not None and cached.der == der
        assert other.ocsp.answer(request).der == der

    assert other.ocsp.poll_changes() >= 1
    for request in requests:
        assert other.ocsp.answer_cached(request) is None
        assert successful(other.ocsp.answer(request).der).certificate_status is REVOKED


def test_responders_rotate_before_they_expire_and_every_response_is_re_signed(
    authority: CertificationAuthority, sql: Connection
) -> None:
    views = [issue(authority, "smki-device"), issue(authority, "tls-server")]
    every_ca = {view.name for view in authority.list_cas()}
    short = status_with(authority, ocsp_responder_days=2, ocsp_responder_renew_days=1)
    first = short.maintain()
    assert set(first.responders_issued) == every_ca and first.responses_signed == len(views) + 3
    assert short.ocsp.rotate_responders(actor="test") == []  # two days left, renewed with one left

    # A node whose renew window is longer sees every responder near its end: successors, then re-signing.
    long = status_with(authority, ocsp_responder_days=30, ocsp_responder_renew_days=7)
    assert set(long.ocsp.rotate_responders(actor="mpki-status")) == every_ca
    assert long.ocsp.presign() == len(views) + 3
    assert long.ocsp.presign() == 0
    query = text("SELECT ca_id, MAX(id) FROM ocsp_responders GROUP BY ca_id")
    newest = {int(ca_id): int(responder_id) for ca_id, responder_id in sql.execute(query)}
    responders = sql.execute(text("SELECT ca_id, responder_id FROM ocsp_responses")).all()
    assert all(newest[ca_id] == responder_id for ca_id, responder_id in responders)
    for view in views:
        issuer = ca_certificate(authority, view.ca)
        response = successful(long.ocsp.answer(ocsp_request(certificate(view), issuer)).der)
        responder = check_signed_by_responder(response, issuer)
        assert responder.not_valid_after_utc - responder.not_valid_before_utc == dt.timedelta(days=30)
    assert len(snapshot(sql)["ocsp_responders"]) == 2 * len(every_ca)
    assert long.ocsp.rotate_responders(actor="mpki-status") == []
    # The first node, which still remembers the old responders, leaves the new responses alone.
    assert short.ocsp.presign() == 0
    assert long.ocsp.presign() == 0


def test_an_inactive_keystore_serves_presigned_answers_and_asks_to_try_later_for_the_rest(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    view = issue(authority, "smki-device")
    issuer = ca_certificate(authority, "smki-device-ca")
    cert = certificate(view)
    status.maintain()
    node = inactive_node(authority)
    plain = ocsp_request(cert, issuer)
    assert node.ocsp.answer(plain).der == stored_response(sql, view.serial)
    needs_signing = {
        "nonce": ocsp_request(cert, issuer, nonce=b"fresh"),
        "sha256": ocsp_request(cert, issuer, hashes.SHA256()),
        "several": multi_request([cert_id(issuer, cert.serial_number), cert_id(issuer, 3)]),
        "unknown": request_by_hash(issuer, 0xABC),
    }
    for name, request in needs_signing.items():
        assert response_status(node.ocsp.answer(request).der) is S.TRY_LATER, name
    with pytest.raises(KeyStoreError):
        node.crls.publish("smki-device-ca")
    with pytest.raises(KeyStoreError):
        node.maintain()

    # A revocation still stands (and its stale answer is gone); CRLs follow once the keys are back.
    outcome = node.revocations.revoke([view.serial], R.KEY_COMPROMISE, actor=AGENT)
    assert outcome.published == () and "not re-published yet" in outcome.warnings[0]
    assert node.revocations.find(view.serial).status == "revoked"
    assert response_status(node.ocsp.answer(plain).der) is S.TRY_LATER
    assert status.maintain().responses_signed == 1  # the keys are back: OCSP catches up at once
    assert node.ocsp.answer(plain).der == stored_response(sql, view.serial)
    assert successful(node.ocsp.answer(plain).der).certificate_status is REVOKED


def test_a_revocation_made_while_the_keys_were_inactive_is_published_by_the_next_maintenance(
    authority: CertificationAuthority, status: StatusService
) -> None:
    view = issue(authority, "smki-device")
    status.maintain()
    node = inactive_node(authority)
    assert node.revocations.revoke([view.serial], R.KEY_COMPROMISE, actor=AGENT).published == ()
    published = {(crl.ca, crl.kind) for crl in status.maintain().crls_published}
    assert {("smki-device-ca", "full"), ("smki-device-ca", "delta")} <= published


def test_presign_covers_thousands_in_chunks(authority: CertificationAuthority, status: StatusService) -> None:
    revoked_at = utcnow().replace(microsecond=0) - dt.timedelta(hours=1)
    serials = insert_certificates(authority, "smki-device-ca", 1200, revoked=[(revoked_at, 1), (revoked_at, 0)])
    assert status.ocsp.presign("smki-device-ca") == 1200
    assert status.ocsp.presign("smki-device-ca") == 0
    issuer = ca_certificate(authority, "smki-device-ca")
    response = successful(status.ocsp.answer(request_by_hash(issuer, int(serials[-1], 16))).der)
    assert response.certificate_status is REVOKED and response.revocation_time_utc == revoked_at
    der = serialization.Encoding.DER  # the answer came from the store: same bytes on a second request
    assert status.ocsp.answer(request_by_hash(issuer, int(serials[-1], 16))).der == response.public_bytes(der)


def test_a_good_answer_signed_before_a_revocation_is_never_stored_after_it(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    """The race between a presign batch (or a cache miss on another node) and a revocation: the answer
    was signed while the certificate was good, the revocation commits, then the answer reaches the store."""
    view = issue(authority, "smki-org")
    status.maintain()
    issuer = status.ocsp._index.by_id[_ca_id(sql, "smki-org-ca")]
    signer = status.ocsp._signer(issuer)
    now = utcnow().replace(microsecond=0)
    good = SingleStatus(
        CertId("sha1", issuer.name_hashes["sha1"], issuer.key_hashes["sha1"], int(view.serial, 16)),
        "good",
        now,
        now + dt.timedelta(hours=1),
    )
    stale = signer.sign([good], nonce=None, produced_at=now)
    status.revocations.revoke([view.serial], RevocationReason.KEY_COMPROMISE, actor="agent")
    revoked_answer = stored_response(sql, view.serial)
    status.ocsp._store(issuer.ca_id, signer, [(view.serial, good, stale)])
    assert stored_response(sql, view.serial) == revoked_answer
    assert successful(revoked_answer).certificate_status is ocsp.OCSPCertStatus.REVOKED
    # And a stored answer that no longer matches the certificate is picked up by the next presign.
    sql.execute(text("UPDATE ocsp_responses SET status = 'good'"))
    sql.commit()
    assert status.ocsp.presign() >= 1
    assert successful(stored_response(sql, view.serial)).certificate_status is ocsp.OCSPCertStatus.REVOKED


def _ca_id(sql: Connection, name: str) -> int:
    return int(sql.execute(text("SELECT id FROM cas WHERE name = :n"), {"n": name}).scalar_one())
