"""The recovery room in-process, on SQLite and PostgreSQL: the drill, dual control, and each compromise
procedure (device, organisation, issuing CA, root, apex) for what it must achieve and for its refusals,
each of which leaves the installation as it was. The installation is made by the real ceremony path, so
the apex carries its contingency key."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from mpki.asn1.tamp import (
    WRAPPED_APEX_CONTIN_KEY_EXT,
    AllModules,
    ApexContingencyKey,
    ApexUpdate,
    ApexUpdateConfirm,
    MsgRef,
    StatusCode,
    StatusQuery,
    TampError,
    TampUpdateConfirm,
    TrustAnchor,
)
from mpki.ca import IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.ceremony.spec import parse as parse_ceremony
from mpki.domain import Forbidden, InvalidRequest, KeyStoreError, MpkiError, NotFound, RevocationReason
from mpki.keys.activation import ActivationStore
from mpki.keys.contingency import read_unwrap_key, write_unwrap_key
from mpki.keys.purposes import Purpose
from mpki.keys.quorum import combine, read_share
from mpki.recovery import RecoveryContext, RecoveryStatus, RunInputs, approve, issuing_ca
from mpki.recovery import apex as apex_recovery
from mpki.recovery import devices as device_recovery
from mpki.recovery import organisations as organisation_recovery
from mpki.recovery import roots as root_recovery
from mpki.recovery.drill import DrillStep, run_drill
from mpki.status import StatusService
from mpki.store import RecoveryRepository
from mpki.store.schema import DeviceFlag, IssuedCertificate
from mpki.tams import parse, public_key_id, sign_message, unwrap_contingency_key
from mpki.tams.errors import TampRefused
from tests.csr_factory import org_csr
from tests.support.openssl import openssl
from tests.support.recovery import (
    APPROVER,
    ORG_EUI,
    PROPOSER,
    Installation,
    certificate,
    install,
    pem,
    public_spki,
    spki,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ceremonies" / "smki-root.yaml"
KC = RevocationReason.KEY_COMPROMISE


@pytest.fixture
def inst(env: dict[str, str]) -> Iterator[Installation]:
    yield from install(env)


def answer(store, der: bytes) -> object:  # type: ignore[no-untyped-def]
    message, _ = parse(store.process(der))
    return message


def items(inst: Installation, recovery_id: int, kind: str) -> dict[str, str | None]:
    with inst.authority.database.reader() as session:
        rows = RecoveryRepository(session).items(recovery_id, limit=10_000)
        return {row.subject: row.replacement for row in rows if row.kind == kind}


def contingency_secret(inst: Installation, shares: list[Path]) -> bytes:
    group, secret = combine([read_share(path) for path in shares])
    assert group == "contingency"
    return secret


@contextmanager
def reopened(inst: Installation) -> Iterator[RecoveryContext]:
    """A new process's view: the authority opened afresh, so it sees the keystore's activation now."""
    authority = open_authority(inst.context.settings)
    try:
        yield RecoveryContext(inst.context.settings, authority, StatusService(authority))
    finally:
        authority.database.dispose()


def write_pem(folder: Path, name: str, der: bytes) -> str:
    (folder / name).write_bytes(pem(der))
    return name


# ----- the drill ---------------------------------------------------------------------------------


def test_the_drill_passes_every_step(tmp_path: Path, database_url: str) -> None:
    seen: list[DrillStep] = []
    report = run_drill(tmp_path / "drill", database_url=database_url, on_step=seen.append)
    assert report.ok, [s for s in report.steps if not s.ok]
    assert seen == report.steps and len(report.steps) == 17
    assert [s.scenario for s in report.steps].count("apex") == 5
    assert {s.scenario for s in report.steps} == {"setup", "device", "organisation", "issuing-ca", "root", "apex"}
    names = {s.step for s in report.steps}
    assert "the endpoint trusts the new root, not the old, and certificates under it validate" in names
    assert "a message signed by the replaced smki-root key is refused" in names
    with pytest.raises(InvalidRequest, match="not empty"):
        run_drill(tmp_path / "drill", database_url=database_url)


# ----- dual control ------------------------------------------------------------------------------


def test_dual_control_refuses_the_proposer_and_finished_or_withdrawn_records(inst: Installation) -> None:
    first, second = inst.issue_devices(2)
    desk = inst.context.desk
    proposal = device_recovery.propose(inst.context, [first], actor=PROPOSER)
    assert proposal.status is RecoveryStatus.PROPOSED and inst.events("recovery.proposed")[0]["recovery"] == proposal.id
    before = inst.snapshot()
    with pytest.raises(Forbidden, match="dual control"):
        approve(inst.context, proposal.id, actor=PROPOSER)
    with pytest.raises(Forbidden):
        approve(inst.context, proposal.id, actor=f"  {PROPOSER} ")  # the same person, padded
    assert desk.show(proposal.id).status is RecoveryStatus.PROPOSED
    assert desk.show(proposal.id).approved_by is None
    assert inst.events("recovery.approved") == [] and inst.events("device.flagged") == []
    assert inst.snapshot() == before
    with pytest.raises(InvalidRequest, match="--by"):
        approve(inst.context, proposal.id, actor=" ")

    withdrawn = device_recovery.propose(inst.context, [second], actor=PROPOSER)
    assert desk.withdraw(withdrawn.id, actor=PROPOSER).status is RecoveryStatus.WITHDRAWN
    before = inst.snapshot()
    with pytest.raises(InvalidRequest, match="withdrawn"):
        approve(inst.context, withdrawn.id, actor=APPROVER)
    with pytest.raises(InvalidRequest):
        desk.withdraw(withdrawn.id, actor=PROPOSER)
    assert inst.snapshot() == before

    done = approve(inst.context, proposal.id, actor=APPROVER)
    assert done.status is RecoveryStatus.COMPLETED and done.approved_by == APPROVER and done.completed_at
    [approved] = inst.events("recovery.approved")
    assert approved["recovery"] == proposal.id and approved["actor"] == APPROVER
    assert approved["proposed_by"] == PROPOSER
    before = inst.snapshot()
    for actor in ("carol", APPROVER):
        with pytest.raises(InvalidRequest, match="completed"):
            approve(inst.context, proposal.id, actor=actor)
    with pytest.raises(InvalidRequest):
        desk.withdraw(proposal.id, actor=PROPOSER)
    with pytest.raises(NotFound):
        approve(inst.context, 9999, actor=APPROVER)
    assert inst.snapshot() == before
    assert [v.id for v in desk.list(RecoveryStatus.COMPLETED)] == [proposal.id]
    assert [v.id for v in desk.list(RecoveryStatus.WITHDRAWN)] == [withdrawn.id]


def test_two_approvals_racing_only_one_runs(inst: Installation) -> None:
    [device] = inst.issue_devices(1)
    proposal = device_recovery.propose(inst.context, [device], actor=PROPOSER)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def approver(name: str) -> None:
        barrier.wait()
        try:
            results[name] = approve(inst.context, proposal.id, actor=name).status
        except MpkiError as error:
            results[name] = error

    threads = [threading.Thread(target=approver, args=(name,)) for name in ("bob", "carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    won = [name for name, result in results.items() if result is RecoveryStatus.COMPLETED]
    lost = [result for result in results.values() if isinstance(result, InvalidRequest)]
    assert len(won) == 1 and len(lost) == 1, results
    assert inst.context.desk.show(proposal.id).approved_by == won[0]
    assert len(inst.events("recovery.approved")) == 1 and len(inst.events("device.flagged")) == 1


# ----- device key compromise ---------------------------------------------------------------------


def test_device_recovery_marks_not_in_use_and_flags(inst: Installation) -> None:
    made = inst.issue_devices(3, ("digitalSignature", "keyAgreement"))
    targets, bystander = sorted(made)[:2], sorted(made)[2]
    org_serial = inst.issue_org(1)[0]
    proposal = device_recovery.propose(inst.context, [t.lower() for t in targets] + [targets[0]], actor=PROPOSER)
    assert proposal.parameters == {"eui64s": targets}
    done = approve(inst.context, proposal.id, actor=APPROVER)
    assert done.outcome == {"devices_flagged": 2, "certificates_not_in_use": 4}
    assert done.items == {"not-in-use": (4, 0), "device-flagged": (2, 0)}

    marked = {serial for eui in targets for serial in made[eui]}
    with inst.authority.database.reader() as session:
        rows = session.scalars(select(IssuedCertificate)).all()
        not_in_use = {row.serial for row in rows if row.not_in_use_at is not None}
        flags = session.scalars(select(DeviceFlag)).all()
    assert not_in_use == marked
    assert {(f.eui64, f.recovery_id, f.status) for f in flags} == {(t, proposal.id, "flagged") for t in targets}
    assert {f"smki-device-ca:{s}" for s in marked} == set(items(inst, proposal.id, "not-in-use"))
    assert all(inst.authority.find_certificate(s).status == "issued" for s in [*marked, org_serial])
    assert not_in_use.isdisjoint(made[bystander])

    events = inst.events("certificate.not_in_use")
    assert {e["serial"] for e in events} == marked and {e["recovery"] for e in events} == {proposal.id}
    assert sorted(e["eui64"] for e in inst.events("device.flagged")) == targets
    [completed] = inst.events("recovery.completed")
    assert completed["recovery"] == proposal.id and completed["certificates_not_in_use"] == 4


def _device_refusals(inst: Installation) -> None:
    made = inst.issue_devices(2)
    flagged, revoked = sorted(made)
    inst.context.status.revocations.revoke(made[revoked], KC, actor="setup")
    approve(inst.context, device_recovery.propose(inst.context, [flagged], actor=PROPOSER).id, actor=APPROVER)
    before = inst.snapshot()
    for euis, match in [
        (["zz-not-hex"], "hexadecimal"),
        (["90B3D51F"], "16"),
        ([], "at least one"),
        ([os.urandom(8).hex()], "no live device certificate"),
        ([ORG_EUI], "no live device certificate"),  # the organisation's own EUI-64: no device certificate
        ([revoked], "no live device certificate"),
        ([flagged], "already flagged"),
    ]:
        with pytest.raises(InvalidRequest, match=match):
            device_recovery.propose(inst.context, euis, actor=PROPOSER)
    assert inst.snapshot() == before


# ----- organisation key compromise ---------------------------------------------------------------


def test_organisation_recovery_revokes_publishes_and_reissues(inst: Installation, tmp_path: Path) -> None:
    org_serials = inst.issue_org(3)
    devices = inst.issue_devices(1)
    device_serial = next(iter(devices.values()))[0]
    proposal = organisation_recovery.propose(inst.context, "Recovery Energy", KC, actor=PROPOSER)
    assert proposal.parameters["live_at_proposal"] == 3
    csr = org_csr(bytes.fromhex(ORG_EUI))
    done = approve(inst.context, proposal.id, actor=APPROVER, inputs=RunInputs(csrs=(csr,)))
    assert done.status is RecoveryStatus.COMPLETED
    outcome = done.outcome or {}
    assert outcome["revoked"] == 3
    assert "smki-org-ca" in {str(crl).split("#")[0] for crl in outcome["crls_published"]}
    batch = outcome["reissue_batch"]
    assert isinstance(batch, dict) and batch["organisation_id"] == inst.org_id and batch["profile"] == "smki-org"
    counts = batch["counts"]
    assert counts["size"] == counts["processed"] == 1 and counts["held"] + counts["issued"] == 1, counts
    assert done.items == {"revoked": (3, 0)}
    assert set(items(inst, proposal.id, "revoked")) == {f"smki-org-ca:{s}" for s in org_serials}
    assert all(inst.authority.find_certificate(s).status == "revoked" for s in org_serials)
    assert inst.authority.find_certificate(device_serial).status == "issued"

    crl = x509.load_der_x509_crl(inst.context.status.crls.latest("smki-org-ca").der)
    issuer = certificate(inst.authority.get_ca("smki-org-ca").certificate_der)
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    for serial in org_serials:
        entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
        assert entry is not None, serial
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(int(device_serial, 16)) is None
    (tmp_path / "org.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    text = openssl(tmp_path, "crl", "-inform", "DER", "-in", "org.crl", "-noout", "-text")
    assert text.returncode == 0 and text.stdout.count("Key Compromise") == 3, text.stdout + text.stderr
    # The new CSR went through the RA: issued or held for an agent under the organisation's rules.
    live = inst.authority.list_certificates(profile="smki-org", status="issued")
    assert len(live) == counts["issued"] and not {c.serial for c in live} & set(org_serials)


def _organisation_refusals(inst: Installation) -> None:
    from mpki.ra import OPERATOR
    from mpki.ra.directory import Directory

    inst.issue_org(1)
    Directory(inst.authority.database).create_organisation(OPERATOR, "Empty Org", ["90B3D51F30030000"], ["supplier"])
    before = inst.snapshot()
    with pytest.raises(NotFound):
        organisation_recovery.propose(inst.context, "No Such Org", KC, actor=PROPOSER)
    with pytest.raises(InvalidRequest, match="no live organisation certificate"):
        organisation_recovery.propose(inst.context, "Empty Org", KC, actor=PROPOSER)
    for reason in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.CA_COMPROMISE):
        with pytest.raises(InvalidRequest, match="not a reason"):
            organisation_recovery.propose(inst.context, "Recovery Energy", reason, actor=PROPOSER)
    assert inst.snapshot() == before


# ----- issuing CA compromise ---------------------------------------------------------------------


def _issuing_ca_setup(inst: Installation, live_count: int) -> tuple[list[str], str, str]:
    live = inst.issue_org(live_count)
    revoked, superseded = inst.issue_org(2)
    inst.context.status.revocations.revoke([revoked], KC, actor="setup")
    with inst.authority.database.transaction() as session:
        session.execute(
            update(IssuedCertificate).where(IssuedCertificate.serial == superseded).values(status="superseded")
        )
    inst.issue_devices(2)
    return live, revoked, superseded


def _propose_issuing_ca(inst: Installation) -> int:
    view = issuing_ca.propose(inst.context, "smki-org-ca", "smki-org-ca-2", "mpki Dev Org CA 2", KC, actor=PROPOSER)
    return view.id


def _assert_reissued(inst: Installation, recovery_id: int, live: list[str]) -> None:
    """Every previously live certificate has exactly one replacement under the new CA: same subject and key."""
    new_ca = certificate(inst.authority.get_ca("smki-org-ca-2").certificate_der)
    replacements = items(inst, recovery_id, "reissue")
    assert set(replacements) == set(live)
    under_new = [c for c in inst.authority.list_certificates(profile="smki-org") if c.ca == "smki-org-ca-2"]
    assert len(under_new) == len(live)  # no duplicate replacement
    for serial in live:
        old = inst.authority.find_certificate(serial, "smki-org-ca")
        assert old.status == "superseded"
        ca, new_serial = str(replacements[serial]).split(":")
        assert ca == "smki-org-ca-2"
        new = inst.authority.find_certificate(new_serial, "smki-org-ca-2")
        assert new.status == "issued"
        old_cert, new_cert = certificate(old.der), certificate(new.der)
        assert new_cert.subject == old_cert.subject and spki(new_cert) == spki(old_cert)
        new_cert.verify_directly_issued_by(new_ca)


def _assert_old_ca_on_arl(inst: Installation) -> None:
    old = inst.authority.get_ca("smki-org-ca")
    assert old.status == "revoked"
    arl = x509.load_der_x509_crl(inst.context.status.crls.latest("smki-root").der)
    root = certificate(inst.authority.get_ca("smki-root").certificate_der)
    assert arl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert arl.get_revoked_certificate_by_serial_number(int(old.serial, 16)) is not None
    assert sum(1 for entry in arl if entry.serial_number == int(old.serial, 16)) == 1


def test_issuing_ca_recovery_reissues_every_live_certificate(inst: Installation) -> None:
    live, revoked, superseded = _issuing_ca_setup(inst, 5)
    recovery_id = _propose_issuing_ca(inst)
    seen: list[tuple[str, int, int]] = []
    done = approve(inst.context, recovery_id, actor=APPROVER, progress=lambda *a: seen.append(a))
    assert done.status is RecoveryStatus.COMPLETED
    outcome = done.outcome or {}
    assert outcome["listed"] == outcome["reissued"] == len(live) == 5
    assert outcome["old_live_after"] == 0 and outcome["new_live"] == 5
    assert outcome["revoked_ca"] == "smki-org-ca"
    assert {str(crl).split("#")[0] for crl in outcome["arl_published"]} == {"smki-root"}
    assert done.items == {"reissue": (5, 5)}
    assert seen[-1] == ("certificates reissued", 5, 5)
    _assert_reissued(inst, recovery_id, live)
    _assert_old_ca_on_arl(inst)
    # The revoked and the superseded certificates were not reissued and kept their status.
    assert inst.authority.find_certificate(revoked, "smki-org-ca").status == "revoked"
    assert inst.authority.find_certificate(superseded, "smki-org-ca").status == "superseded"
    assert not {revoked, superseded} & set(items(inst, recovery_id, "reissue"))
    assert all(c.ca == "smki-device-ca" for c in inst.authority.list_certificates(profile="smki-device"))
    assert [e["ca"] for e in inst.events("ceremony.completed") if e["ca"] == "smki-org-ca-2"] == ["smki-org-ca-2"]
    assert (inst.home / "recovery" / str(recovery_id) / "ceremony-smki-org-ca-2.json").is_file()


def test_issuing_ca_recovery_resumes_after_a_failure_midway(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, _, _ = _issuing_ca_setup(inst, 5)
    recovery_id = _propose_issuing_ca(inst)
    monkeypatch.setattr(issuing_ca, "PAGE", 2)
    real = inst.authority.reissue
    calls: list[int] = []

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise MpkiError("simulated outage")
        return real(*args, **kwargs)

    monkeypatch.setattr(inst.authority, "reissue", flaky)
    with pytest.raises(MpkiError, match="simulated outage"):
        approve(inst.context, recovery_id, actor=APPROVER)
    failed = inst.context.desk.show(recovery_id)
    assert failed.status is RecoveryStatus.FAILED and "simulated outage" in str((failed.outcome or {})["error"])
    assert failed.items == {"reissue": (5, 2)}
    assert inst.authority.get_ca("smki-org-ca").status == "revoked"
    [failure] = inst.events("recovery.failed")
    assert failure["recovery"] == recovery_id
    with pytest.raises(Forbidden):
        approve(inst.context, recovery_id, actor=PROPOSER)

    monkeypatch.setattr(inst.authority, "reissue", real)
    done = approve(inst.context, recovery_id, actor="carol")
    assert done.status is RecoveryStatus.COMPLETED and done.approved_by == "carol"
    outcome = done.outcome or {}
    assert outcome["listed"] == outcome["reissued"] == 5 and outcome["old_live_after"] == 0
    assert outcome["arl_published"] == []  # revoked in the first run, not again
    assert [e["recovery"] for e in inst.events("recovery.resumed")] == [recovery_id]
    assert len([v for v in inst.authority.list_cas() if v.name == "smki-org-ca-2"]) == 1
    _assert_reissued(inst, recovery_id, live)
    _assert_old_ca_on_arl(inst)


def test_issuing_ca_recovery_refused_while_the_keystore_is_inactive(inst: Installation) -> None:
    live, _, _ = _issuing_ca_setup(inst, 3)
    recovery_id = _propose_issuing_ca(inst)
    settings = inst.context.settings
    ActivationStore(settings.run_dir).deactivate()
    before = inst.snapshot()
    with reopened(inst) as context, pytest.raises(KeyStoreError, match="not active"):
        approve(context, recovery_id, actor=APPROVER)
    # Refused before the approval is recorded: still proposed, nothing written.
    assert inst.context.desk.show(recovery_id).status is RecoveryStatus.PROPOSED
    assert inst.snapshot() == before and inst.events("recovery.approved") == []

    group, secret = combine([read_share(p) for p in inst.shares("ca-keys")[:2]])
    ActivationStore(settings.run_dir).activate(group, secret)
    with reopened(inst) as context:
        done = approve(context, recovery_id, actor=APPROVER)
    assert done.status is RecoveryStatus.COMPLETED
    assert (done.outcome or {})["reissued"] == (done.outcome or {})["listed"] == 3
    _assert_reissued(inst, recovery_id, live)
    _assert_old_ca_on_arl(inst)


def _issuing_ca_refusals(inst: Installation) -> None:
    inst.issue_org(1)
    before = inst.snapshot()
    for ca, new_name, common_name, match in [
        ("smki-root", "x-2", "mpki X 2", "is a root"),
        ("tls-root", "x-2", "mpki X 2", "is a root"),
        ("smki-device-ca", "smki-org-ca", "mpki X 2", "already exists"),
        ("smki-org-ca", "smki-org-ca-2", "", "common name"),
        ("smki-org-ca", "smki-org-ca-2", "bad_name&", "PrintableString"),
        ("smki-org-ca", "smki-org-ca-2", "x" * 65, "common name"),
    ]:
        with pytest.raises(InvalidRequest, match=match):
            issuing_ca.propose(inst.context, ca, new_name, common_name, KC, actor=PROPOSER)
    with pytest.raises(NotFound):
        issuing_ca.propose(inst.context, "no-such-ca", "x-2", "mpki X 2", KC, actor=PROPOSER)
    with pytest.raises(InvalidRequest, match="not a reason"):
        issuing_ca.propose(inst.context, "smki-org-ca", "x-2", "mpki X 2", RevocationReason.CERTIFICATE_HOLD, actor="a")
    assert inst.snapshot() == before


# ----- root compromise ---------------------------------------------------------------------------


def _tls_client(inst: Installation) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "recovery-client")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    order = IssuanceOrder("tls-client", csr.public_bytes(serialization.Encoding.DER), approved_by="setup")
    return inst.authority.issue(order).der


def test_root_recovery_new_root_trusted_by_the_endpoint(inst: Installation, tmp_path: Path) -> None:
    endpoint = inst.endpoint()
    ee = _tls_client(inst)  # issued under tls-issuing BEFORE the recovery
    old_root = inst.authority.get_ca("tls-root")
    proposal = root_recovery.propose(
        inst.context, "tls-root", "tls-root-2", "mpki Dev TLS Root 2", None, actor=PROPOSER
    )
    assert proposal.parameters["signer"] == "smki-root" and proposal.parameters["children"] == ["tls-issuing"]
    done = approve(inst.context, proposal.id, actor=APPROVER)
    outcome = done.outcome or {}
    assert outcome["new_root"] == "tls-root-2" and outcome["recertified"] == ["tls-issuing"]
    assert inst.authority.get_ca("tls-root").status == "compromised"
    assert inst.authority.get_ca("tls-issuing").parent == "tls-root-2"
    update_file = Path(str(outcome["tamp_update"]))
    assert update_file.parent == inst.home / "recovery" / str(proposal.id)

    printed = openssl(tmp_path, "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(update_file))
    assert printed.returncode == 0 and "signerInfos" in printed.stdout, printed.stderr

    confirm = answer(endpoint, update_file.read_bytes())
    assert isinstance(confirm, TampUpdateConfirm), confirm
    assert confirm.statuses and all(s is StatusCode.success for s in confirm.statuses)
    new_root = inst.authority.get_ca("tls-root-2").certificate_der
    held = {record.anchor.der for record in endpoint.state.anchors}
    assert new_root in held and old_root.certificate_der not in held

    names = {
        "new": write_pem(tmp_path, "new-root.pem", new_root),
        "old": write_pem(tmp_path, "old-root.pem", old_root.certificate_der),
        "issuing": write_pem(tmp_path, "tls-issuing.pem", inst.authority.get_ca("tls-issuing").certificate_der),
        "ee": write_pem(tmp_path, "ee.pem", ee),
    }
    good = openssl(tmp_path, "verify", "-CAfile", names["new"], "-untrusted", names["issuing"], names["ee"])
    assert good.returncode == 0 and "ee.pem: OK" in good.stdout, good.stdout + good.stderr
    bad = openssl(tmp_path, "verify", "-CAfile", names["old"], "-untrusted", names["issuing"], names["ee"])
    assert bad.returncode != 0

    replay = answer(endpoint, update_file.read_bytes())
    assert isinstance(replay, TampError) and replay.status is StatusCode.seqNumFailure
    old_key = inst.authority.keystore.signing_key(old_root.key_id, Purpose.TAMP)
    old_anchor = TrustAnchor.from_certificate(old_root.certificate_der)
    signed = sign_message(StatusQuery(MsgRef(AllModules(), 2**40)), old_key, key_id=old_anchor.key_id)
    refused = answer(endpoint, signed)
    assert isinstance(refused, TampError) and refused.status is StatusCode.noTrustAnchor
    [signed_event] = inst.events("tams.message.signed")
    assert signed_event["recovery"] == proposal.id and signed_event["signer"] == "smki-root"


def _root_refusals(inst: Installation) -> None:
    inst.authority.retire("smki-org-ca", status="compromised", actor="setup", reason="test")
    before = inst.snapshot()
    for ca, new_name, signer, match in [
        ("smki-root", "x-2", None, "apex"),
        ("tls-issuing", "x-2", None, "not a root"),
        ("tls-root", "smki-root", None, "already exists"),
        ("tls-root", "x-2", "smki-org-ca", "cannot sign"),
        ("tls-root", "x-2", "tls-root", "cannot sign"),
    ]:
        with pytest.raises(InvalidRequest, match=match):
            root_recovery.propose(inst.context, ca, new_name, "mpki X 2", signer, actor=PROPOSER)
    with pytest.raises(NotFound):
        root_recovery.propose(inst.context, "tls-root", "x-2", "mpki X 2", "nobody", actor=PROPOSER)
    assert inst.snapshot() == before


# ----- apex compromise ---------------------------------------------------------------------------


def _extension(der: bytes) -> ApexContingencyKey:
    value = certificate(der).extensions.get_extension_for_oid(x509.ObjectIdentifier(WRAPPED_APEX_CONTIN_KEY_EXT))
    assert isinstance(value.value, x509.UnrecognizedExtension)
    return ApexContingencyKey.decode(value.value.value)


def test_apex_recovery_with_the_contingency_key(inst: Installation) -> None:
    endpoint = inst.endpoint()
    shares = inst.shares()
    assert len(shares) == 5
    old_record = inst.vault().record()
    old_apex = inst.authority.get_ca("smki-root")
    proposal = apex_recovery.propose(inst.context, "smki-root-2", "mpki Dev SMKI Root 2", actor=PROPOSER)
    inputs = RunInputs(shares=tuple(shares[1:4]), unwrap_key=inst.unwrap_key)
    done = approve(inst.context, proposal.id, actor=APPROVER, inputs=inputs)
    outcome = done.outcome or {}
    assert done.status is RecoveryStatus.COMPLETED and outcome["new_apex"] == "smki-root-2"
    assert inst.authority.get_ca("smki-root").status == "compromised"
    assert {v.name for v in inst.authority.list_cas() if v.parent == "smki-root-2"} == {"smki-org-ca", "smki-device-ca"}

    update_der = Path(str(outcome["tamp_apex_update"])).read_bytes()
    confirm = answer(endpoint, update_der)
    assert isinstance(confirm, ApexUpdateConfirm) and confirm.status is StatusCode.success, confirm
    new_apex = inst.authority.get_ca("smki-root-2").certificate_der
    assert endpoint.state.apex.der == new_apex

    # The new apex carries a NEW wrapped contingency key: it unwraps with the new unwrap key to the vault's key.
    record = inst.vault().record()
    assert record.apex == "smki-root-2" and record.key_id == outcome["contingency_key_id"] != old_record.key_id
    assert old_record.key_id in record.retired
    new_unwrap = read_unwrap_key(Path(str(outcome["new_unwrap_key"])))
    assert new_unwrap != read_unwrap_key(inst.unwrap_key)
    vault_keys = inst.vault().open(contingency_secret(inst, shares[:3]))
    new_public = unwrap_contingency_key(_extension(new_apex), new_unwrap)
    assert public_spki(new_public) == public_spki(vault_keys.info(record.key_id).public_key())
    with pytest.raises(TampRefused, match="does not unwrap"):
        unwrap_contingency_key(_extension(new_apex), read_unwrap_key(inst.unwrap_key))

    # Never again a message signed by a replaced key: replay, old apex key, old contingency key.
    replay = answer(endpoint, update_der)
    assert isinstance(replay, TampError)
    old_anchor = TrustAnchor.from_certificate(old_apex.certificate_der)
    old_apex_key = inst.authority.keystore.signing_key(old_apex.key_id, Purpose.TAMP)
    query = sign_message(StatusQuery(MsgRef(AllModules(), 2**40)), old_apex_key, key_id=old_anchor.key_id)
    refused = answer(endpoint, query)
    assert isinstance(refused, TampError) and refused.status is StatusCode.noTrustAnchor
    old_public = unwrap_contingency_key(_extension(old_apex.certificate_der), read_unwrap_key(inst.unwrap_key))
    rogue = ApexUpdate(MsgRef(AllModules(), 2**40), TrustAnchor.from_certificate(old_apex.certificate_der))
    second = sign_message(
        rogue,
        vault_keys.signing_key(old_record.key_id),
        key_id=public_key_id(old_public),
        contingency_key=read_unwrap_key(inst.unwrap_key),
    )
    refused = answer(endpoint, second)
    assert isinstance(refused, TampError), refused
    assert endpoint.state.apex.der == new_apex
    assert inst.events("recovery.step") and any(
        e["step"] == "contingency.rotated" for e in inst.events("recovery.step")
    )


def test_apex_refusals_leave_the_apex_and_a_correct_retry_succeeds(inst: Installation, tmp_path: Path) -> None:
    shares = inst.shares()
    proposal = apex_recovery.propose(inst.context, "smki-root-2", "mpki Dev SMKI Root 2", actor=PROPOSER)
    wrong_key = tmp_path / "wrong-unwrap-key.json"
    write_unwrap_key(wrong_key, os.urandom(32), "smki-root")
    before = inst.snapshot()
    for inputs, error in [
        (RunInputs(shares=tuple(shares[:2]), unwrap_key=inst.unwrap_key), KeyStoreError),
        (RunInputs(shares=tuple(inst.shares("ca-keys")), unwrap_key=inst.unwrap_key), KeyStoreError),
        (RunInputs(shares=tuple(shares[:3]), unwrap_key=wrong_key), InvalidRequest),
        (RunInputs(shares=tuple(shares[:3]), unwrap_key=tmp_path / "missing.json"), InvalidRequest),
        (RunInputs(shares=(), unwrap_key=inst.unwrap_key), InvalidRequest),
        (RunInputs(shares=tuple(shares[:3])), InvalidRequest),
    ]:
        with pytest.raises(error):
            approve(inst.context, proposal.id, actor=APPROVER, inputs=inputs)
        view = inst.context.desk.show(proposal.id)
        assert view.status is RecoveryStatus.FAILED and (view.outcome or {}).get("error"), inputs
        now = inst.snapshot()
        # Only the record's status and its audit events moved: CAs, certificates, items, vault, files did not.
        assert (now[0], now[2], now[3], now[4], now[5]) == (before[0], before[2], before[3], before[4], before[5])
        assert inst.authority.get_ca("smki-root").status == "active"
    assert inst.events("tams.message.signed") == [] and inst.events("recovery.completed") == []
    assert len(inst.events("recovery.failed")) == 6

    done = approve(
        inst.context, proposal.id, actor="carol", inputs=RunInputs(shares=tuple(shares[2:]), unwrap_key=inst.unwrap_key)
    )
    assert done.status is RecoveryStatus.COMPLETED and inst.vault().record().apex == "smki-root-2"


# ----- the contingency key in the development installation and in ceremonies ----------------------


def test_dev_installation_has_an_unactivated_contingency_key(inst: Installation) -> None:
    record = inst.vault().record()
    assert record.apex == "smki-root"
    apex = inst.authority.get_ca("smki-root").certificate_der
    unwrapped = unwrap_contingency_key(_extension(apex), read_unwrap_key(inst.unwrap_key))
    vault_keys = inst.vault().open(contingency_secret(inst, inst.shares()[2:]))
    assert public_spki(unwrapped) == public_spki(vault_keys.info(record.key_id).public_key())
    active = inst.context.settings.run_dir / "active"
    assert (active / "ca-keys.secret").exists()
    assert not (active / "contingency.secret").exists()
    # No other CA certificate carries the extension.
    for view in inst.authority.list_cas():
        if view.name != "smki-root":
            with pytest.raises(x509.ExtensionNotFound):
                _extension(view.certificate_der)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"apex": "smki-org-ca"}, "must be a root made in this ceremony"),
        ({"apex": "no-such-root"}, "must be a root made in this ceremony"),
        ({"threshold": 1}, "threshold 1"),
        ({"threshold": 6}, "threshold 6"),
    ],
)
def test_ceremony_contingency_section_refusals(change: dict[str, object], match: str) -> None:
    source = EXAMPLE.read_bytes()
    raw = yaml.safe_load(source)
    assert parse_ceremony(raw, source).contingency is not None
    raw["contingency"].update(change)
    with pytest.raises(InvalidRequest, match=match):
        parse_ceremony(raw, source)


def test_proposal_refusals_write_nothing(inst: Installation) -> None:
    """One installation for every scenario's refused proposals (each checks its own snapshot)."""
    _device_refusals(inst)
    _organisation_refusals(inst)
    _issuing_ca_refusals(inst)
    _root_refusals(inst)  # last: it retires smki-org-ca
