"""`mpki recovery drill`: every compromise procedure end to end in a throwaway installation, for operators'
rehearsals (and the test suite). It makes the development hierarchy with its contingency key, an
organisation with device and organisation certificates, and a reference trust-anchor store (what a meter
holds); then runs device, organisation, issuing-CA, root and apex recovery, each proposed by one officer
and approved by another, and checks what each must achieve. Each check is a step that passes or fails;
a failed step does not stop the steps that do not depend on it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.asn1.tamp import (
    AllModules,
    ApexUpdateConfirm,
    MsgRef,
    StatusCode,
    StatusQuery,
    TampError,
    TampUpdateConfirm,
    TrustAnchor,
)
from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.ceremony import run_dev_ceremony
from mpki.ceremony.dev import DEV_UNWRAP_KEY
from mpki.config import load_settings
from mpki.domain import Eui64, InvalidRequest, KeyUsageChoice, RemotePartyRole, RevocationReason, Role
from mpki.keys.contingency import GROUP as CONTINGENCY_GROUP
from mpki.keys.purposes import Purpose
from mpki.keys.quorum import read_share
from mpki.profiles.requests import device_csr, organisation_csr
from mpki.ra import OPERATOR, Principal
from mpki.ra.directory import Directory
from mpki.ra.intake import Registration
from mpki.recovery import apex, devices, issuing_ca, organisations, roots
from mpki.recovery.context import RecoveryContext, RunInputs
from mpki.recovery.records import RecoveryView
from mpki.recovery.runner import approve
from mpki.status import StatusService
from mpki.store import RecoveryCertificates
from mpki.tams import TrustAnchorStore, parse, sign_message

PROPOSER = "drill-officer-1"
APPROVER = "drill-officer-2"
ORGANISATION = "Drill Energy"
ORG_EUI64 = "90B3D51F30D00001"
HW_TYPE = "1.2.826.0.1.8641679.1.2.1.1"


@dataclass(frozen=True, slots=True)
class DrillStep:
    scenario: str
    step: str
    ok: bool
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {"scenario": self.scenario, "step": self.step, "ok": self.ok, "detail": self.detail}


@dataclass
class DrillReport:
    steps: list[DrillStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)


class _Failed(Exception):
    """A check that did not hold; the message says what was seen."""


def _check(condition: bool, detail: str) -> None:
    if not condition:
        raise _Failed(detail)


@dataclass
class _Drill:
    home: Path
    context: RecoveryContext
    endpoint: TrustAnchorStore
    report: DrillReport
    on_step: Callable[[DrillStep], None] | None
    scenario: str = "setup"

    @property
    def authority(self) -> CertificationAuthority:
        return self.context.authority

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """A step passes when its body finishes; `_Failed` or any MpkiError fails it with the reason."""
        notes: list[str] = []
        try:
            yield notes
        except Exception as error:  # a rehearsal reports every failure and goes on
            self._record(DrillStep(self.scenario, name, False, f"{type(error).__name__}: {error}"))
        else:
            self._record(DrillStep(self.scenario, name, True, "; ".join(notes)))

    def _record(self, step: DrillStep) -> None:
        self.report.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    def recover(self, propose: Callable[[], RecoveryView], inputs: RunInputs) -> dict[str, object]:
        """Proposed by one officer, approved (and so run) by another."""
        view = propose()
        done = approve(self.context, view.id, actor=APPROVER, inputs=inputs)
        _check(done.status.value == "completed", f"recovery {view.id} ended {done.status.value}")
        return done.outcome or {}

    def send(self, path_or_der: Path | bytes) -> object:
        der = path_or_der.read_bytes() if isinstance(path_or_der, Path) else path_or_der
        answer, _ = parse(self.endpoint.process(der))
        return answer


def _pem(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _chains_to(certificate: x509.Certificate, chain: list[x509.Certificate], anchors: list[TrustAnchor]) -> bool:
    """Signature by signature up to a certificate the endpoint holds as a trust anchor."""
    current = certificate
    for issuer in chain:
        current.verify_directly_issued_by(issuer)
        current = issuer
    held = {anchor.der for anchor in anchors}
    return current.public_bytes(serialization.Encoding.DER) in held


def run_drill(
    home: Path, *, database_url: str | None = None, on_step: Callable[[DrillStep], None] | None = None
) -> DrillReport:
    """Rehearse every scenario under `home` (empty or absent), on SQLite there unless `database_url`
    names an empty database; nothing of the installation the operator runs is read or touched."""
    if home.exists() and any(home.iterdir()):
        raise InvalidRequest(f"{home} is not empty; a drill needs a throwaway directory")
    environment = {"MPKI_HOME": str(home), "MPKI_ENVIRONMENT": "development"}
    if database_url:
        environment["MPKI_DATABASE_URL"] = database_url
    report = DrillReport()
    run_dev_ceremony(environment, home)
    settings = load_settings(environment)
    authority = open_authority(settings)
    try:
        context = RecoveryContext(settings, authority, StatusService(authority))
        endpoint_key = ec.generate_private_key(ec.SECP256R1())
        cas = {view.name: view for view in authority.list_cas()}
        endpoint = TrustAnchorStore.initialise(
            home / "endpoint" / "store.json",
            endpoint_key,
            TrustAnchor.from_certificate(cas["smki-root"].certificate_der),
            management=[(TrustAnchor.from_certificate(cas["tls-root"].certificate_der), ())],
        )
        drill = _Drill(home, context, endpoint, report, on_step)
        _scenarios(drill)
    finally:
        authority.database.dispose()
    return report


def _scenarios(drill: _Drill) -> None:
    org = _setup(drill)
    _device(drill, org)
    _organisation(drill, org)
    _issuing_ca(drill, org)
    _root(drill)
    _apex(drill)


@dataclass
class _Org:
    id: int
    devices: list[Eui64]
    subscriber: Principal
    agent: Principal


def _issue_org_certificates(drill: _Drill, org: _Org, count: int) -> list[str]:
    orders = [
        IssuanceOrder(
            "smki-org",
            organisation_csr(
                ec.generate_private_key(ec.SECP256R1()),
                Eui64.parse(ORG_EUI64),
                RemotePartyRole.SUPPLIER,
                KeyUsageChoice.DIGITAL_SIGNATURE if n % 2 == 0 else KeyUsageChoice.KEY_AGREEMENT,
            ).public_bytes(serialization.Encoding.DER),
            approved_by="drill-setup",
            organisation_id=org.id,
        )
        for n in range(count)
    ]
    results = drill.authority.issue_many(orders, actor="drill-setup")
    _check(all(r.ok for r in results), f"setup issuance failed: {[r.error for r in results if not r.ok][:1]}")
    return [r.certificate.serial for r in results if r.certificate is not None]


def _device_csr(eui: Eui64) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return device_csr(key, eui, KeyUsageChoice.DIGITAL_SIGNATURE, HW_TYPE).public_bytes(serialization.Encoding.DER)


def _setup(drill: _Drill) -> _Org:
    with drill.step("organisation, devices and certificates") as notes:
        view = Directory(drill.authority.database).create_organisation(
            OPERATOR, ORGANISATION, [ORG_EUI64], ["supplier"]
        )
        org = _Org(
            view.id,
            [Eui64(os.urandom(8)) for _ in range(3)],
            Principal(None, "drill-subscriber@drill.invalid", Role.AUTHORISED_SUBSCRIBER, view.id),
            Principal(None, "drill-agent@drill.invalid", Role.RA_AGENT, None),
        )
        orders = [
            IssuanceOrder("smki-device", _device_csr(eui), approved_by="drill-setup", organisation_id=org.id)
            for eui in org.devices
        ]
        _check(all(r.ok for r in drill.authority.issue_many(orders, actor="drill-setup")), "device issuance failed")
        serials = _issue_org_certificates(drill, org, 4)
        notes.append(f"{len(org.devices)} device and {len(serials)} organisation certificates")
        return org
    raise _Failed("setup failed")  # pragma: no cover - the step above records the failure


def _device(drill: _Drill, org: _Org) -> None:
    drill.scenario = "device"
    target = org.devices[0]
    with drill.step("proposed and approved under dual control") as notes:
        outcome = drill.recover(lambda: devices.propose(drill.context, [target.hex], actor=PROPOSER), RunInputs())
        notes.append(str(outcome))
    with drill.step("certificates marked not in use, device flagged"):
        with drill.authority.database.reader() as session:
            rows = RecoveryCertificates(session).not_in_use_of_device(target.hex)
        _check(len(rows) == 1, f"{len(rows)} certificates not in use, expected 1")
    registration = Registration(drill.authority.database, drill.authority)
    with drill.step("re-enrolment held for an RA agent past the duplicate check") as notes:
        batch = registration.submit_batch(org.subscriber, "smki-device", [_device_csr(target)], ORGANISATION)
        done = registration.process_batch(batch.id)
        _, items = registration.batch(org.subscriber, batch.id)
        _check(done.held == 1 and items[0].status == "pending", f"re-enrolment is {items[0].status}, not held")
        _check("recovery" in (items[0].reason or ""), f"held for {items[0].reason!r}, not for the recovery")
        notes.append(items[0].reason or "")
        request_id = items[0].id
    with drill.step("RA agent approves; the device has a new certificate"):
        decided = registration.decide(org.agent, request_id, True, "drill: device re-keyed after compromise")
        _check(decided.status == "issued", f"request is {decided.status}")
        with drill.authority.database.reader() as session:
            left = RecoveryCertificates(session).not_in_use_of_device(target.hex)
        _check(not left, "the compromised certificate is still current")


def _organisation(drill: _Drill, org: _Org) -> None:
    drill.scenario = "organisation"
    with drill.step("organisation certificates revoked, CRL published, reissue submitted") as notes:
        csr = organisation_csr(
            ec.generate_private_key(ec.SECP256R1()),
            Eui64.parse(ORG_EUI64),
            RemotePartyRole.SUPPLIER,
            KeyUsageChoice.DIGITAL_SIGNATURE,
        ).public_bytes(serialization.Encoding.DER)
        outcome = drill.recover(
            lambda: organisations.propose(drill.context, ORGANISATION, RevocationReason.KEY_COMPROMISE, actor=PROPOSER),
            RunInputs(csrs=(csr,)),
        )
        _check(outcome.get("revoked") == 4, f"revoked {outcome.get('revoked')}, expected 4")
        _check(bool(outcome.get("crls_published")), "no CRL was published")
        notes.append(f"revoked 4; CRLs {outcome['crls_published']}; reissue batch {outcome.get('reissue_batch')}")


def _issuing_ca(drill: _Drill, org: _Org) -> None:
    drill.scenario = "issuing-ca"
    with drill.step("issuing CA revoked on the ARL, replaced, live certificates reissued, counts reconcile") as notes:
        live = _issue_org_certificates(drill, org, 6)
        outcome = drill.recover(
            lambda: issuing_ca.propose(
                drill.context,
                "smki-org-ca",
                "smki-org-ca-2",
                "mpki Dev Org CA 2",
                RevocationReason.KEY_COMPROMISE,
                actor=PROPOSER,
            ),
            RunInputs(),
        )
        _check(outcome.get("reissued") == len(live) == outcome.get("listed"), f"reissued {outcome}")
        _check(drill.authority.get_ca("smki-org-ca").status == "revoked", "the old CA is not revoked")
        _check(bool(outcome.get("arl_published")), "no ARL was published")
        new_ca = _pem(drill.authority.get_ca("smki-org-ca-2").certificate_der)
        for serial in live:
            old = drill.authority.find_certificate(serial, "smki-org-ca")
            _check(old.status == "superseded", f"{serial} is {old.status}")
        replacements = drill.authority.list_certificates(profile="smki-org", status="issued")
        under_new = [c for c in replacements if c.ca == "smki-org-ca-2"]
        for view in under_new:
            _pem(view.der).verify_directly_issued_by(new_ca)
        _check(len(under_new) >= len(live), f"{len(under_new)} certificates under the new CA")
        notes.append(f"{len(live)} live -> {outcome.get('reissued')} reissued; ARL {outcome.get('arl_published')}")


def _root(drill: _Drill) -> None:
    drill.scenario = "root"
    tls_chain_ee: x509.Certificate | None = None
    with drill.step("a TLS certificate under the old root, for later"):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "drill-client")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        issued = drill.authority.issue(
            IssuanceOrder("tls-client", csr.public_bytes(serialization.Encoding.DER), approved_by="drill-setup")
        )
        tls_chain_ee = _pem(issued.der)
    with drill.step("new root in a ceremony; TAMPUpdate accepted by the endpoint") as notes:
        outcome = drill.recover(
            lambda: roots.propose(drill.context, "tls-root", "tls-root-2", "mpki Dev TLS Root 2", None, actor=PROPOSER),
            RunInputs(),
        )
        answer = drill.send(Path(str(outcome["tamp_update"])))
        _check(isinstance(answer, TampUpdateConfirm), f"endpoint answered {answer}")
        assert isinstance(answer, TampUpdateConfirm)
        _check(all(s is StatusCode.success for s in answer.statuses), f"statuses {answer.statuses}")
        notes.append(f"TAMPUpdate seq {outcome['seq_num']} by {outcome['signer']}")
    with drill.step("the endpoint trusts the new root, not the old, and certificates under it validate"):
        anchors = [record.anchor for record in drill.endpoint.state.anchors]
        new_root = drill.authority.get_ca("tls-root-2").certificate_der
        old_root = drill.authority.get_ca("tls-root").certificate_der
        _check(any(a.der == new_root for a in anchors) and not any(a.der == old_root for a in anchors), "anchors wrong")
        issuing = _pem(drill.authority.get_ca("tls-issuing").certificate_der)
        _check(tls_chain_ee is not None and _chains_to(tls_chain_ee, [issuing, _pem(new_root)], anchors), "no chain")
    with drill.step("the same TAMPUpdate again is refused (replay)"):
        answer = drill.send(Path(str(outcome["tamp_update"])))
        _check(isinstance(answer, TampError) and answer.status is StatusCode.seqNumFailure, f"answered {answer}")
    _refuses_old_key(drill, "tls-root")


def _refuses_old_key(drill: _Drill, ca: str) -> None:
    with drill.step(f"a message signed by the replaced {ca} key is refused"):
        view = drill.authority.get_ca(ca)
        anchor = TrustAnchor.from_certificate(view.certificate_der)
        der = sign_message(
            StatusQuery(MsgRef(AllModules(), 2**40)),
            drill.authority.keystore.signing_key(view.key_id, Purpose.TAMP),
            key_id=anchor.key_id,
        )
        answer = drill.send(der)
        _check(isinstance(answer, TampError) and answer.status is StatusCode.noTrustAnchor, f"answered {answer}")


def _apex(drill: _Drill) -> None:
    drill.scenario = "apex"
    shares = sorted(
        path for path in (drill.home / "dev-shares").iterdir() if read_share(path).group == CONTINGENCY_GROUP
    )[:3]
    with drill.step(
        "contingency ceremony (3 of 5), TAMPApexUpdate accepted; the endpoint trusts the new apex"
    ) as notes:
        outcome = drill.recover(
            lambda: apex.propose(drill.context, "smki-root-2", "mpki Dev SMKI Root 2", actor=PROPOSER),
            RunInputs(shares=tuple(shares), unwrap_key=drill.home / DEV_UNWRAP_KEY),
        )
        answer = drill.send(Path(str(outcome["tamp_apex_update"])))
        _check(isinstance(answer, ApexUpdateConfirm), f"endpoint answered {answer}")
        assert isinstance(answer, ApexUpdateConfirm)
        _check(answer.status is StatusCode.success, f"status {answer.status}")
        new_apex = drill.authority.get_ca("smki-root-2").certificate_der
        _check(drill.endpoint.state.apex.der == new_apex, "the endpoint's apex is not the new root")
        notes.append(f"TAMPApexUpdate seq {outcome['seq_num']}; new contingency key {outcome['contingency_key_id']}")
    with drill.step("certificates under the old apex's CAs validate to the new apex"):
        device_ca = _pem(drill.authority.get_ca("smki-device-ca").certificate_der)
        device = drill.authority.list_certificates(profile="smki-device", status="issued")[0]
        _check(_chains_to(_pem(device.der), [device_ca, _pem(new_apex)], [drill.endpoint.state.apex]), "no chain")
    with drill.step("the same TAMPApexUpdate again is refused"):
        answer = drill.send(Path(str(outcome["tamp_apex_update"])))
        _check(isinstance(answer, TampError), f"answered {answer}")
    _refuses_old_key(drill, "smki-root")
    with drill.step("the new apex is obeyed"):
        view = drill.authority.get_ca("smki-root-2")
        anchor = TrustAnchor.from_certificate(view.certificate_der)
        der = sign_message(
            StatusQuery(MsgRef(AllModules(), 1)),
            drill.authority.keystore.signing_key(view.key_id, Purpose.TAMP),
            key_id=anchor.key_id,
        )
        answer = drill.send(der)
        _check(not isinstance(answer, TampError), f"answered {answer}")
