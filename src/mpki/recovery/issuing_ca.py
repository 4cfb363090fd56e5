"""Issuing CA compromise: the CA goes on its parent's ARL, a new issuing CA is stood up in a recorded
ceremony, and every live organisation certificate of the old CA is reissued under the new one (same key
and identity; device certificates are re-provisioned by the device management systems instead).

The run can be repeated after a failure: each stage looks at what is already done, and the certificates
to reissue are fixed as items when first listed, so the counts reconcile however many runs it took."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mpki.ca.model import IssuedView
from mpki.domain import CA_REASONS, InvalidRequest, MpkiError, RevocationReason, utcnow
from mpki.profiles import ca_subject, get_profile
from mpki.recovery.ceremonies import stand_up_ca
from mpki.recovery.context import RecoveryContext, Run
from mpki.recovery.devices import DEVICE_PROFILE
from mpki.recovery.records import RecoveryView, Scenario
from mpki.store import CaRepository, RecoveryCertificates, RecoveryRepository

PAGE = 1000
ITEM = "reissue"


def propose(
    context: RecoveryContext, ca: str, new_name: str, common_name: str, reason: RevocationReason, *, actor: str
) -> RecoveryView:
    authority = context.authority
    view = authority.get_ca(ca)
    if view.parent is None:
        raise InvalidRequest(f"{ca} is a root: use root (or apex) recovery")
    if view.status != "active":
        raise InvalidRequest(f"CA {ca} is {view.status}, not active")
    if reason not in CA_REASONS:
        raise InvalidRequest(f"{reason.rfc_name} is not a reason for a CA certificate")
    if any(other.name == new_name for other in authority.list_cas()):
        raise InvalidRequest(f"a CA named {new_name!r} already exists")
    ca_subject(get_profile(view.profile), common_name)
    profiles = [p for p in view.issues_profiles if p != DEVICE_PROFILE]
    with authority.database.reader() as session:
        live = len(RecoveryCertificates(session).live_of_ca(CaRepository(session).by_name(ca).id, profiles))
    return context.desk.propose(
        Scenario.ISSUING_CA,
        f"issuing CA {ca} -> {new_name}: {live} organisation certificate(s) to reissue",
        {
            "ca": ca,
            "new_ca": new_name,
            "common_name": common_name,
            "reason": reason.rfc_name,
            "parent": view.parent,
            "profile": view.profile,
            "issues": list(view.issues_profiles),
            "reissue_profiles": profiles,
            "live_at_proposal": live,
        },
        actor=actor,
    )


def run(job: Run) -> dict[str, object]:
    p = job.record.parameters
    old, new = str(p["ca"]), str(p["new_ca"])
    arl = _revoke_old_ca(job, old, RevocationReason.parse(str(p["reason"])))
    if not any(view.name == new for view in job.context.authority.list_cas()):
        stand_up_ca(
            job,
            name=new,
            profile=str(p["profile"]),
            common_name=str(p["common_name"]),
            parent=str(p["parent"]),
            issues=list(p["issues"]),
            replaces=job.context.authority.get_ca(old),
        )
    total = _list_items(job, old, list(p["reissue_profiles"]))
    failures = _reissue(job, old, total)
    if failures:
        raise MpkiError(f"{len(failures)} certificate(s) not reissued (first: {failures[0]}); run the recovery again")
    return {
        "revoked_ca": old,
        "arl_published": arl,
        "new_ca": new,
        **_reconcile(job, old, new, list(p["reissue_profiles"])),
    }


def _revoke_old_ca(job: Run, old: str, reason: RevocationReason) -> list[str]:
    """Through the status room's own dual control: the proposer proposes, the approver approves."""
    revocations = job.context.status.revocations
    if job.context.authority.get_ca(old).status == "revoked":
        return []
    pending = [p for p in revocations.pending_ca_revocations() if p.ca == old]
    proposal = pending[0] if pending else revocations.propose_ca_revocation(old, reason, actor=job.record.proposed_by)
    outcome = revocations.approve_ca_revocation(proposal.id, actor=job.record.approved_by or "")
    job.step("ca.revoked", ca=old, arl=list(outcome.published), warnings=list(outcome.warnings))
    return list(outcome.published)


def _list_items(job: Run, old: str, profiles: list[str]) -> int:
    """The certificates to reissue, fixed the first time (a later run finds them already listed)."""
    with job.context.authority.database.transaction() as session:
        records = RecoveryRepository(session)
        counts = records.item_counts(job.record.id)
        if ITEM in counts:
            return counts[ITEM][0]
        ca_id = CaRepository(session).by_name(old).id
        serials = RecoveryCertificates(session).live_of_ca(ca_id, profiles)
        records.add_items(job.record.id, ITEM, serials, utcnow())
    job.step("reissue.listed", count=len(serials))
    return len(serials)


def _reissue(job: Run, old: str, total: int) -> list[str]:
    database = job.context.authority.database
    record_id = job.record.id
    with database.reader() as session:
        done = RecoveryRepository(session).item_counts(record_id).get(ITEM, (0, 0))[1]
    failures: list[str] = []
    after = 0

    def settle(session: Session, pairs: list[tuple[str, IssuedView]]) -> None:
        # In the transaction that stores the replacements: an item is done exactly when its replacement exists.
        replacements = {old_serial: f"{view.ca}:{view.serial}" for old_serial, view in pairs}
        RecoveryRepository(session).settle_items(record_id, ITEM, replacements)

    job.progress("certificates reissued", done, total)
    while True:
        with database.reader() as session:
            page = RecoveryRepository(session).open_items(record_id, ITEM, after, PAGE)
            serials = [item.subject for item in page]
            after = page[-1].id if page else after
        if not serials:
            break
        results = job.context.authority.reissue(old, serials, actor=job.actor, on_stored=settle)
        failures += [f"{serials[r.index]}: {r.error}" for r in results if not r.ok]
        done += sum(1 for r in results if r.ok)
        job.progress("certificates reissued", done, total)
    job.step("reissue.done", reissued=done, failed=len(failures))
    return failures


def _reconcile(job: Run, old: str, new: str, profiles: list[str]) -> dict[str, object]:
    with job.context.authority.database.reader() as session:
        cas = CaRepository(session)
        certificates = RecoveryCertificates(session)
        listed, reissued = RecoveryRepository(session).item_counts(job.record.id).get(ITEM, (0, 0))
        old_live = len(certificates.live_of_ca(cas.by_name(old).id, profiles))
        new_live = len(certificates.live_of_ca(cas.by_name(new).id, profiles))
    figures: dict[str, object] = {
        "listed": listed,
        "reissued": reissued,
        "old_live_after": old_live,
        "new_live": new_live,
    }
    if reissued != listed or old_live != 0 or new_live < reissued:
        raise MpkiError(f"the counts do not reconcile: {figures}")
    job.step("reissue.reconciled", **figures)
    return figures
