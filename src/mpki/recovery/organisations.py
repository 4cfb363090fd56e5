"""Organisation key compromise: revoke every live certificate of the organisation's own keys (not its
devices'), publish the CRLs at once, and reissue on the new CSRs the organisation brings, through the RA
like any request (its approval rules apply)."""

from __future__ import annotations

from mpki.domain import END_ENTITY_REASONS, InvalidRequest, RevocationReason, Role, utcnow
from mpki.ra import Principal
from mpki.ra.intake import Registration
from mpki.recovery.context import RecoveryContext, Run
from mpki.recovery.devices import DEVICE_PROFILE
from mpki.recovery.records import RecoveryView, Scenario
from mpki.store import CaRepository, OrganisationRepository, RecoveryCertificates, RecoveryRepository


def _live(context: RecoveryContext, organisation_id: int) -> list[tuple[str, str]]:
    with context.authority.database.reader() as session:
        names = {ca.id: ca.name for ca in CaRepository(session).all()}
        rows = RecoveryCertificates(session).live_of_organisation(organisation_id)
        return [(names[row.ca_id], row.serial) for row in rows if row.profile != DEVICE_PROFILE]


def propose(context: RecoveryContext, organisation: str, reason: RevocationReason, *, actor: str) -> RecoveryView:
    with context.authority.database.reader() as session:
        org = OrganisationRepository(session).by_name(organisation)
    if reason not in END_ENTITY_REASONS or reason is RevocationReason.CERTIFICATE_HOLD:
        raise InvalidRequest(f"{reason.rfc_name} is not a reason to revoke a compromised organisation's certificates")
    live = _live(context, org.id)
    if not live:
        raise InvalidRequest(f"{organisation} has no live organisation certificate to revoke")
    return context.desk.propose(
        Scenario.ORGANISATION,
        f"organisation {org.name}: {len(live)} certificate(s)",
        {"organisation": org.name, "organisation_id": org.id, "reason": reason.rfc_name, "live_at_proposal": len(live)},
        actor=actor,
    )


def run(job: Run) -> dict[str, object]:
    parameters = job.record.parameters
    reason = RevocationReason.parse(str(parameters["reason"]))
    live = _live(job.context, int(parameters["organisation_id"]))
    outcome: dict[str, object] = {"revoked": 0, "crls_published": []}
    if live:
        revoked = job.context.status.revocations.revoke(
            [serial for _, serial in live], reason, actor=job.actor, context={"recovery": job.record.id}
        )
        with job.context.authority.database.transaction() as session:
            RecoveryRepository(session).add_items(job.record.id, "revoked", [f"{ca}:{s}" for ca, s in live], utcnow())
        outcome = {"revoked": len(revoked.serials), "crls_published": list(revoked.published)}
        if revoked.warnings:
            outcome["warnings"] = list(revoked.warnings)
        job.step("certificates.revoked", count=len(revoked.serials), crls=list(revoked.published))
    job.progress("certificates revoked", len(live), len(live))
    if job.inputs.csrs:
        outcome["reissue_batch"] = _submit_new_csrs(job, str(parameters["organisation"]))
    return outcome


def _submit_new_csrs(job: Run, organisation: str) -> dict[str, object]:
    """The replacements, on new keys: a batch for the organisation, decided by its approval rules."""
    principal = Principal(
        person_id=None, email=job.record.approved_by or "recovery", role=Role.SERVICE_ADMIN, organisation_id=None
    )
    registration = Registration(job.context.authority.database, job.context.authority)
    batch = registration.submit_batch(principal, job.inputs.csr_profile, list(job.inputs.csrs), organisation)
    done = registration.process_batch(batch.id)
    job.step("reissue.submitted", batch=batch.id, size=len(job.inputs.csrs))
    return done.as_json()
