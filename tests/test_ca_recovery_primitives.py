"""The CA's recovery primitives: recertify (root recovery), retire, and reissue (issuing-CA recovery).

Each is checked for what it makes (the certificates, verified with `openssl verify` and pkilint), for
the refusals, and that a refusal writes nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from mpki.audit import verify_chain
from mpki.ca import CertificationAuthority, IssuanceOrder, IssuedView
from mpki.domain import InvalidRequest, NotFound, RevocationReason
from mpki.status import StatusService
from mpki.store import (
    AuditRepository,
    CaRepository,
    CertificateRepository,
    RecoveryCertificates,
    SerialRepository,
)
from tests.csr_factory import org_csr, random_eui64
from tests.support.pkilint_check import lint_certificate

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
ACTOR = "recovery-test"


def state(authority: CertificationAuthority) -> tuple[Any, ...]:
    """Everything a refused primitive must leave as it was: CA rows, audit tip, serials, certificates."""
    with authority.database.reader() as session:
        head = AuditRepository(session).head()
        serials = SerialRepository(session).counts()
        certificates = CertificateRepository(session).count()
    return tuple(authority.list_cas()), head.seq if head else 0, serials, certificates


def events(authority: CertificationAuthority, action: str) -> list[tuple[str | None, str | None, dict[str, Any]]]:
    with authority.database.reader() as session:
        return [(e.ca, e.serial, json.loads(e.details)) for e in AuditRepository(session).by_action(action)]


def certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(cert: x509.Certificate) -> bytes | None:
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


def openssl_verify(tmp_path: Path, leaf: bytes, root: bytes, untrusted: bytes) -> subprocess.CompletedProcess[str]:
    """`openssl verify -CAfile root -untrusted intermediate leaf`, files written as PEM."""
    folder = tmp_path / f"verify-{len(list(tmp_path.glob('verify-*')))}"
    folder.mkdir()
    files = {}
    for name, der in (("root", root), ("untrusted", untrusted), ("leaf", leaf)):
        files[name] = folder / f"{name}.pem"
        files[name].write_bytes(certificate(der).public_bytes(serialization.Encoding.PEM))
    command = [OPENSSL, "verify", "-x509_strict", "-CAfile", str(files["root"])]
    command += ["-untrusted", str(files["untrusted"]), str(files["leaf"])]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def issue_org(authority: CertificationAuthority, count: int) -> list[IssuedView]:
    orders = [
        IssuanceOrder("smki-org", org_csr(random_eui64(), role, usage), approved_by=ACTOR)
        for role, usage in [("02", "digitalSignature"), ("03", "keyAgreement")] * ((count + 1) // 2)
    ][:count]
    results = authority.issue_many(orders, actor=ACTOR)
    assert all(r.certificate for r in results), [r.error for r in results]
    return [r.certificate for r in results if r.certificate]


def new_root(authority: CertificationAuthority, name: str) -> bytes:
    return authority.create_ca(
        name=name, profile_name="smki-root", common_name=f"mpki Test {name}", actor=ACTOR
    ).certificate_der


# ----- recertify --------------------------------------------------------------------------------------


def test_recertify_keeps_the_key_and_chains_old_certificates_to_the_new_root(
    authority: CertificationAuthority, tmp_path: Path
) -> None:
    [leaf] = issue_org(authority, 1)
    old_root = authority.get_ca("smki-root").certificate_der
    before = authority.get_ca("smki-org-ca")
    root2 = new_root(authority, "smki-root-2")

    view = authority.recertify("smki-org-ca", parent="smki-root-2", actor=ACTOR)
    assert view.parent == "smki-root-2" and view.status == "active" and view.serial != before.serial
    assert authority.get_ca("smki-org-ca").certificate_der == view.certificate_der  # stored, not only returned
    old, new, root = certificate(before.certificate_der), certificate(view.certificate_der), certificate(root2)
    assert new.subject == old.subject and ski(new) == ski(old) and spki(new) == spki(old)
    assert new.issuer == root.subject and new.issuer != old.issuer and aki(new) == ski(root)
    new.verify_directly_issued_by(root)
    assert new.serial_number != old.serial_number
    assert lint_certificate(view.certificate_der) == []

    done = openssl_verify(tmp_path, leaf.der, root2, view.certificate_der)
    assert done.returncode == 0 and done.stdout.strip().endswith(": OK"), done.stdout + done.stderr
    refused = openssl_verify(tmp_path, leaf.der, old_root, view.certificate_der)
    assert refused.returncode != 0, refused.stdout

    [(ca, serial, details)] = events(authority, "ca.recertified")
    assert (ca, serial) == ("smki-org-ca", view.serial)
    assert details["previous_parent"] == "smki-root" and details["previous_serial"] == before.serial
    assert details["previous_fingerprint_sha256"] == before.fingerprint_sha256
    assert verify_chain(authority.database).ok


@pytest.mark.parametrize(
    ("name", "parent", "error", "message"),
    [
        ("smki-org-ca", "retired-root", InvalidRequest, "only an active CA certifies"),
        ("smki-root", "smki-root-2", InvalidRequest, "is a root"),
        ("no-such-ca", "smki-root-2", NotFound, "no-such-ca"),
        ("smki-org-ca", "no-such-root", NotFound, "no-such-root"),
        ("retired-ca", "smki-root-2", InvalidRequest, "only an active CA is re-certified"),
    ],
)
def test_recertify_refusals_write_nothing(
    authority: CertificationAuthority, name: str, parent: str, error: type[Exception], message: str
) -> None:
    new_root(authority, "smki-root-2")
    new_root(authority, "retired-root")
    authority.retire("retired-root", status="compromised", actor=ACTOR, reason="test")
    authority.create_ca(
        name="retired-ca",
        profile_name="smki-issuing",
        common_name="mpki Test retired CA",
        parent="smki-root",
        actor=ACTOR,
    )
    authority.retire("retired-ca", status="retired", actor=ACTOR, reason="test")
    before = state(authority)
    with pytest.raises(error, match=message):
        authority.recertify(name, parent=parent, actor=ACTOR)
    assert state(authority) == before


# ----- retire -----------------------------------------------------------------------------------------


def test_retire_takes_a_ca_out_of_issuing(authority: CertificationAuthority) -> None:
    issue_org(authority, 1)
    view = authority.retire("smki-org-ca", status="compromised", actor=ACTOR, reason="key exposed")
    assert (view.status, view.issues_profiles) == ("compromised", ())
    assert authority.get_ca("smki-org-ca").status == "compromised"
    with authority.database.reader() as session, pytest.raises(NotFound, match="no active CA issues"):
        CaRepository(session).issuing_for("smki-org")
    [result] = authority.issue_many(
        [IssuanceOrder("smki-org", org_csr(random_eui64()), approved_by=ACTOR)], actor=ACTOR
    )
    assert result.certificate is None and "no active CA issues profile 'smki-org'" in (result.error or "")
    [(ca, serial, details)] = events(authority, "ca.compromised")
    assert (ca, serial) == ("smki-org-ca", view.serial)
    assert details == {"reason": "key exposed", "issued_profiles": ["smki-org"]}
    # The device CA is untouched.
    assert authority.get_ca("smki-device-ca").issues_profiles == ("smki-device",)
    assert verify_chain(authority.database).ok


@pytest.mark.parametrize(
    ("name", "status", "error", "message"),
    [
        ("smki-org-ca", "compromised", InvalidRequest, "not active"),  # retired once already
        ("smki-device-ca", "revoked", InvalidRequest, "compromised or retired"),
        ("no-such-ca", "retired", NotFound, "no-such-ca"),
    ],
)
def test_retire_refusals_write_nothing(
    authority: CertificationAuthority, name: str, status: str, error: type[Exception], message: str
) -> None:
    authority.retire("smki-org-ca", status="retired", actor=ACTOR, reason="rotation")
    before = state(authority)
    with pytest.raises(error, match=message):
        authority.retire(name, status=status, actor=ACTOR, reason="again")
    assert state(authority) == before


# ----- reissue ----------------------------------------------------------------------------------------


def live_serials(authority: CertificationAuthority, ca: str) -> list[str]:
    with authority.database.reader() as session:
        return RecoveryCertificates(session).live_of_ca(CaRepository(session).by_name(ca).id, ["smki-org"])


def counts(authority: CertificationAuthority, ca: str) -> dict[str, int]:
    with authority.database.reader() as session:
        return RecoveryCertificates(session).count_by_status(CaRepository(session).by_name(ca).id, ["smki-org"])


def second_org_ca(authority: CertificationAuthority) -> bytes:
    return authority.create_ca(
        name="smki-org-ca-2",
        profile_name="smki-issuing",
        common_name="mpki Test Org CA 2",
        parent="smki-root",
        issues=("smki-org",),
        actor=ACTOR,
    ).certificate_der


def test_reissue_is_refused_while_the_old_ca_still_issues(authority: CertificationAuthority) -> None:
    serials = [v.serial for v in issue_org(authority, 3)]
    before = state(authority)
    results = authority.reissue("smki-org-ca", serials, actor=ACTOR)
    assert [r.certificate for r in results] == [None, None, None]
    assert all("smki-org-ca still issues smki-org" in (r.error or "") for r in results)
    assert state(authority) == before
    with pytest.raises(NotFound, match="no-such-ca"):
        authority.reissue("no-such-ca", serials, actor=ACTOR)
    assert state(authority) == before


def test_reissue_moves_every_live_certificate_to_the_new_ca(authority: CertificationAuthority) -> None:
    issued = issue_org(authority, 9)
    status = StatusService(authority)
    revoked, superseded = issued[0].serial, issued[1].serial
    status.revocations.revoke([revoked], RevocationReason.KEY_COMPROMISE, actor=ACTOR)
    authority.supersede(superseded, by_serial=issued[2].serial, actor=ACTOR)
    new_ca_der = second_org_ca(authority)
    authority.retire("smki-org-ca", status="compromised", actor=ACTOR, reason="issuing CA compromise")
    live = live_serials(authority, "smki-org-ca")
    assert sorted(live) == sorted(v.serial for v in issued[2:])
    old_counts = counts(authority, "smki-org-ca")
    assert old_counts == {"issued": 7, "revoked": 1, "superseded": 1}
    old_by_serial = {v.serial: certificate(v.der) for v in issued}

    stored: list[tuple[bool, list[str], dict[str, str]]] = []

    def on_stored(session: Session, pairs: list[tuple[str, IssuedView]]) -> None:
        # Inside the transaction: the old rows already read as superseded, the new ones are there. The
        # bulk UPDATE does not refresh rows the session loaded before it, hence expire_all first.
        session.expire_all()
        rows = CertificateRepository(session).by_serials(
            CaRepository(session).by_name("smki-org-ca").id, [old for old, _ in pairs]
        )
        new = CertificateRepository(session).by_serials(
            CaRepository(session).by_name("smki-org-ca-2").id, [view.serial for _, view in pairs]
        )
        stored.append(
            (
                session.in_transaction() and len(new) == len(pairs),
                sorted({row.status for row in rows}),
                {old: view.serial for old, view in pairs},
            )
        )

    asked = [*live[:3], revoked, "deadbeef", superseded, *live[3:]]
    results = authority.reissue("smki-org-ca", asked, actor=ACTOR, on_stored=on_stored)
    assert [r.index for r in results] == list(range(len(asked)))
    errors = {asked[r.index]: r.error for r in results if r.certificate is None}
    assert set(errors) == {revoked, "deadbeef", superseded}
    assert "only a live certificate is reissued" in (errors[revoked] or "")
    assert "only a live certificate is reissued" in (errors[superseded] or "")
    assert "no certificate deadbeef" in (errors["deadbeef"] or "")

    replacements = {asked[r.index]: r.certificate for r in results if r.certificate is not None}
    assert sorted(replacements) == sorted(live)
    new_ca = certificate(new_ca_der)
    for old_serial, view in replacements.items():
        old, new = old_by_serial[old_serial], certificate(view.der)
        assert view.ca == "smki-org-ca-2" and view.serial != old_serial and view.profile == "smki-org"
        assert new.subject == old.subject and spki(new) == spki(old)
        assert new.issuer == new_ca.subject and aki(new) == ski(new_ca)
        new.verify_directly_issued_by(new_ca)
        assert lint_certificate(view.der) == [], old_serial
    assert [ok for ok, _, _ in stored] == [True] * len(stored)
    assert all(statuses == ["superseded"] for _, statuses, _ in stored)
    paired: dict[str, str] = {}
    for _, _, pairs in stored:
        paired |= pairs
    assert paired == {old: view.serial for old, view in replacements.items()}

    # Counts reconcile: every certificate live before has exactly one replacement, nothing else moved.
    assert counts(authority, "smki-org-ca") == {"revoked": 1, "superseded": 8}
    assert counts(authority, "smki-org-ca-2") == {"issued": old_counts["issued"]}
    assert live_serials(authority, "smki-org-ca") == []
    assert status.revocations.find(revoked).status == "revoked"
    superseded_events = events(authority, "certificate.superseded")
    assert sorted(serial or "" for _, serial, d in superseded_events if d.get("reason") == "reissued") == sorted(live)
    assert verify_chain(authority.database).ok

    # Nothing is reissued twice.
    again = authority.reissue("smki-org-ca", live[:2], actor=ACTOR)
    assert [r.certificate for r in again] == [None, None]
    assert counts(authority, "smki-org-ca-2") == {"issued": old_counts["issued"]}


def test_a_failing_on_stored_hook_stores_nothing_of_the_chunk(authority: CertificationAuthority) -> None:
    issue_org(authority, 3)
    second_org_ca(authority)
    authority.retire("smki-org-ca", status="compromised", actor=ACTOR, reason="test")
    live = live_serials(authority, "smki-org-ca")

    def refuse(session: Session, pairs: Sequence[tuple[str, IssuedView]]) -> None:
        raise RuntimeError("recording the recovery items failed")

    with pytest.raises(RuntimeError, match="recording the recovery items failed"):
        authority.reissue("smki-org-ca", live, actor=ACTOR, on_stored=refuse)
    assert sorted(live_serials(authority, "smki-org-ca")) == sorted(live)
    assert counts(authority, "smki-org-ca-2") == {}
    with authority.database.reader() as session:
        assert SerialRepository(session).counts().get("abandoned") == len(live)
    assert verify_chain(authority.database).ok


def test_a_serial_named_twice_is_refused_once_and_its_neighbours_are_reissued(
    authority: CertificationAuthority,
) -> None:
    first, second = (v.serial for v in issue_org(authority, 2))
    second_org_ca(authority)
    authority.retire("smki-org-ca", status="compromised", actor=ACTOR, reason="test")
    results = authority.reissue("smki-org-ca", [first, second, first], actor=ACTOR)
    assert [r.ok for r in results] == [True, True, False]
    assert "certificate " + first + " is named twice" == results[2].error
    assert counts(authority, "smki-org-ca") == {"superseded": 2}
    assert counts(authority, "smki-org-ca-2") == {"issued": 2}
