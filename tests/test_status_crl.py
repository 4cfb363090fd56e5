"""CRLs and ARLs in process: one cRLNumber sequence for full and delta CRLs, times from settings, the
extensions each kind of CA must carry, signatures, what a delta holds, what is due, and a CRL of ten
thousand entries built from the database."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from cryptography import x509
from sqlalchemy import Connection, text

from mpki.ca import CertificationAuthority
from mpki.config import load_settings
from mpki.domain import NotFound, RevocationReason, utcnow
from mpki.status import DELTA, FULL, StatusService, crl_url
from tests.support.status import (
    ca_certificate,
    certificate,
    crl_serials,
    insert_certificates,
    issue,
    signed_by,
    snapshot,
    status_with,
)

R = RevocationReason
AGENT = "ra-agent:alice@example.org"
EVERY_CA = ("smki-root", "smki-org-ca", "smki-device-ca", "tls-root", "tls-issuing")


@pytest.fixture
def status(authority: CertificationAuthority) -> StatusService:
    return StatusService(authority)


def number_of(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_crl_numbers_grow_across_full_and_delta(authority: CertificationAuthority, status: StatusService) -> None:
    published = [
        status.crls.publish("tls-issuing", FULL),
        status.crls.publish("tls-issuing", DELTA),
        status.crls.publish("tls-issuing", DELTA),
        status.crls.publish("tls-issuing", FULL),
        status.crls.publish("tls-issuing", DELTA),
    ]
    view = issue(authority, "tls-server")
    status.revocations.revoke([view.serial], R.SUPERSEDED, actor=AGENT)  # a full CRL and a delta at once
    published += status.crls.history("tls-issuing", 2)[::-1]
    numbers = [number_of(x509.load_der_x509_crl(crl.der)) for crl in published]
    assert numbers == [crl.number for crl in published] == list(range(1, 8))
    assert [crl.kind for crl in published] == [FULL, DELTA, DELTA, FULL, DELTA, FULL, DELTA]
    assert [crl.base_number for crl in published] == [None, 1, 1, None, 4, None, 6]
    for crl in published:
        indicator = x509.load_der_x509_crl(crl.der).extensions
        if crl.kind == DELTA:
            assert indicator.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == crl.base_number
        else:
            with pytest.raises(x509.ExtensionNotFound):
                indicator.get_extension_for_class(x509.DeltaCRLIndicator)
    assert [crl.number for crl in status.crls.history("tls-issuing")] == list(range(7, 0, -1))
    assert status.crls.latest("tls-issuing", FULL).number == 6 and status.crls.latest("tls-issuing", DELTA).number == 7
    # Each CA has a sequence of its own.
    assert status.crls.publish("tls-root").number == 1
    # A delta with no full CRL yet brings its base with it.
    delta = status.crls.publish("smki-org-ca", DELTA)
    assert (delta.number, delta.base_number, status.crls.latest("smki-org-ca").number) == (2, 1, 1)


def test_times_follow_the_status_settings(authority: CertificationAuthority, env: dict[str, str]) -> None:
    settings = load_settings(
        env
        | {"MPKI_STATUS_CRL_NEXT_UPDATE_HOURS": "5", "MPKI_STATUS_CRL_REFRESH_HOURS": "2"}
        | {"MPKI_STATUS_DELTA_NEXT_UPDATE_HOURS": "3"}
    )
    status = StatusService(CertificationAuthority(settings, authority.database, authority.keystore))
    before = utcnow().replace(microsecond=0)
    full, delta = status.crls.publish("smki-device-ca", FULL), status.crls.publish("smki-device-ca", DELTA)
    after = utcnow()
    for published, hours in ((full, 5), (delta, 3)):
        crl = x509.load_der_x509_crl(published.der)
        assert before <= crl.last_update_utc <= after and crl.last_update_utc == published.this_update
        assert crl.next_update_utc == published.next_update == published.this_update + dt.timedelta(hours=hours)
    # Never beyond the CA's own end.
    forever = status_with(authority, crl_next_update_hours=24 * 365 * 200, delta_next_update_hours=24 * 365 * 200)
    ca_end = ca_certificate(authority, "tls-issuing").not_valid_after_utc
    for kind in (FULL, DELTA):
        crl = x509.load_der_x509_crl(forever.crls.publish("tls-issuing", kind).der)
        assert crl.next_update_utc == ca_end


@pytest.mark.parametrize("ca", EVERY_CA)
def test_each_crl_carries_the_right_extensions_and_signature(
    authority: CertificationAuthority, status: StatusService, ca: str
) -> None:
    issuer = ca_certificate(authority, ca)
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    is_root = ca in ("smki-root", "tls-root")
    # The TLS leaves carry this URL as their CRL distribution point, so the IDP names it too (RFC 5280
    # 5.2.5). SMKI certificates carry none; an ARL names none, so that it covers the self-signed root too.
    covered = certificate(issue(authority, "tls-client")) if ca == "tls-issuing" else None
    for kind in (FULL, DELTA):
        published = status.crls.publish(ca, kind)
        crl = x509.load_der_x509_crl(published.der)
        assert crl.issuer == issuer.subject and crl.issuer.public_bytes() == issuer.subject.public_bytes()
        assert signed_by(crl, issuer)
        assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
        idp_extension = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        idp = idp_extension.value
        assert idp_extension.critical
        assert (idp.only_contains_ca_certs, idp.only_contains_user_certs) == (is_root, not is_root)
        assert not idp.indirect_crl and idp.only_some_reasons is None and idp.relative_name is None
        assert published.is_arl == (is_root and kind == FULL)
        if covered is None:
            assert idp.full_name is None
        else:
            [point] = covered.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
            assert (
                point.full_name
                == idp.full_name
                == [x509.UniformResourceIdentifier(crl_url(authority.settings.public_url, ca))]
            )
        if kind == FULL:
            [freshest] = crl.extensions.get_extension_for_class(x509.FreshestCRL).value
            assert freshest.full_name == [
                x509.UniformResourceIdentifier(crl_url(authority.settings.public_url, ca, DELTA))
            ]
            assert freshest.full_name[0].value.endswith(f"/crl/{ca}-delta.crl")
        else:
            with pytest.raises(x509.ExtensionNotFound):
                crl.extensions.get_extension_for_class(x509.FreshestCRL)
    # Another CA's key does not verify it.
    other = ca_certificate(authority, "tls-root" if ca != "tls-root" else "smki-root")
    assert not signed_by(x509.load_der_x509_crl(status.crls.latest(ca).der), other)


def test_entries_and_reason_codes(authority: CertificationAuthority, status: StatusService) -> None:
    reasons = [R.UNSPECIFIED, R.KEY_COMPROMISE, R.AFFILIATION_CHANGED, R.SUPERSEDED, R.CESSATION_OF_OPERATION]
    views = {reason: issue(authority, "smki-device") for reason in reasons}
    untouched = issue(authority, "smki-device")
    at = {}
    for reason, view in views.items():
        at[reason] = status.revocations.revoke([view.serial], reason, actor=AGENT).revoked_at
    crl = x509.load_der_x509_crl(status.crls.latest("smki-device-ca").der)
    assert len(crl) == len(reasons) and crl.get_revoked_certificate_by_serial_number(int(untouched.serial, 16)) is None
    for reason, view in views.items():
        entry = crl.get_revoked_certificate_by_serial_number(int(view.serial, 16))
        assert entry is not None and entry.revocation_date_utc == at[reason]
        if reason is R.UNSPECIFIED:
            assert len(entry.extensions) == 0  # RFC 5280 5.3.1: no reasonCode for unspecified
        else:
            [extension] = entry.extensions
            assert extension.value == x509.CRLReason(x509.ReasonFlags[reason.name.lower()]) and not extension.critical


def test_a_delta_lists_only_what_changed_since_its_base(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    old, new = issue(authority, "tls-server"), issue(authority, "tls-server")
    status.revocations.revoke([old.serial], R.KEY_COMPROMISE, actor=AGENT)
    an_hour_ago = (utcnow() - dt.timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    sql.execute(
        text("UPDATE certificates SET revoked_at = :at WHERE serial = :s"), {"at": an_hour_ago, "s": old.serial}
    )
    status.revocations.revoke([new.serial], R.SUPERSEDED, actor=AGENT)
    full = status.crls.latest("tls-issuing")
    delta = status.crls.latest("tls-issuing", DELTA)
    assert delta.base_number == full.number and delta.number == full.number + 1
    assert set(crl_serials(x509.load_der_x509_crl(full.der))) == {int(old.serial, 16), int(new.serial, 16)}
    assert crl_serials(x509.load_der_x509_crl(delta.der)) == {int(new.serial, 16): x509.ReasonFlags.superseded}
    assert (full.entries, delta.entries) == (2, 1)
    # A later delta on the same base still lists the change; once a new base covers it, it drops out.
    assert set(crl_serials(x509.load_der_x509_crl(status.crls.publish("tls-issuing", DELTA).der))) == {
        int(new.serial, 16)
    }
    sql.execute(
        text("UPDATE certificates SET revoked_at = :at WHERE serial = :s"), {"at": an_hour_ago, "s": new.serial}
    )
    status.crls.publish("tls-issuing", FULL)
    assert crl_serials(x509.load_der_x509_crl(status.crls.publish("tls-issuing", DELTA).der)) == {}


def test_due_lists_what_needs_publishing(authority: CertificationAuthority, status: StatusService) -> None:
    everything = {(ca, kind) for ca in EVERY_CA for kind in (FULL, DELTA)}
    assert set(status.crls.due()) == everything
    status.crls.publish("smki-org-ca", FULL)
    assert set(status.crls.due()) == everything - {("smki-org-ca", FULL)}
    report = status.maintain()
    assert {(crl.ca, crl.kind) for crl in report.crls_published} == everything - {("smki-org-ca", FULL)}
    assert status.crls.due() == []
    assert status.maintain().crls_published == ()
    soon = utcnow() + dt.timedelta(minutes=61)  # delta_refresh_minutes = 60
    assert set(status.crls.due(soon)) == {(ca, DELTA) for ca in EVERY_CA}
    tomorrow = utcnow() + dt.timedelta(hours=25)  # crl_refresh_hours = 24
    assert set(status.crls.due(tomorrow)) == everything


def test_a_crl_of_ten_thousand_entries_holds_every_one(
    authority: CertificationAuthority, status: StatusService
) -> None:
    base = utcnow().replace(microsecond=0) - dt.timedelta(days=3)
    revoked = [(base + dt.timedelta(seconds=37 * i), reason) for i, reason in enumerate((0, 1, 3, 4, 5, 9) * 3)]
    serials = insert_certificates(authority, "smki-device-ca", 10_000, revoked=revoked)
    insert_certificates(authority, "smki-device-ca", 50)  # not revoked: not listed
    published = status.crls.publish("smki-device-ca")
    assert published.entries == 10_000
    crl = x509.load_der_x509_crl(published.der)
    assert signed_by(crl, ca_certificate(authority, "smki-device-ca"))
    assert len(crl) == 10_000
    found = {entry.serial_number: entry for entry in crl}
    assert set(found) == {int(s, 16) for s in serials}
    expected_reasons = Counter(revoked[i % len(revoked)][1] for i in range(10_000))
    got_reasons: Counter[int] = Counter()
    for index, serial in enumerate(serials):
        entry = found[int(serial, 16)]
        at, reason = revoked[index % len(revoked)]
        assert entry.revocation_date_utc == at
        if reason == 0:
            assert len(entry.extensions) == 0
        else:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            assert flag == x509.ReasonFlags[R(reason).name.lower()]
        got_reasons[reason] += 1
    assert got_reasons == expected_reasons
    # The delta built on it lists none of them (all revoked days ago).
    assert status.crls.publish("smki-device-ca", DELTA).entries == 0


def test_unknown_cas_and_missing_crls_are_not_found(
    authority: CertificationAuthority, status: StatusService, sql: Connection
) -> None:
    before = snapshot(sql)
    for call in (
        lambda: status.crls.publish("no-such-ca"),
        lambda: status.crls.publish("no-such-ca", DELTA),
        lambda: status.crls.latest("no-such-ca"),
        lambda: status.crls.history("no-such-ca"),
    ):
        with pytest.raises(NotFound, match="no-such-ca"):
            call()
    with pytest.raises(NotFound, match="has no published CRL yet"):
        status.crls.latest("smki-root")
    with pytest.raises(NotFound, match="has no published delta CRL yet"):
        status.crls.latest("smki-root", DELTA)
    assert status.crls.history("smki-root") == []
    assert snapshot(sql) == before
