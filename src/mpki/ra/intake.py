"""Request intake: batches (and single requests) stored first, then checked, de-duplicated, approved
by policy and handed to the CA, with a result and an audit event for every item.

Bad items are rejected with their reason; suspicious device items (the EUI-64 and key usage already
have a live certificate or a request in flight) are held for an RA agent; a public key that is already
certified is rejected. The checks run set-based over the whole batch, a chunk at a time.

A device flagged by a device-key-compromise recovery is always held, whatever the organisation's rule:
its re-enrolment goes past the duplicate hold only with an RA agent's approval, which clears the flag
and supersedes the certificates the recovery marked not in use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

from mpki.audit import AuditRecord, append
from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.domain import Action, Forbidden, InvalidRequest, MpkiError, NotFound, utcnow
from mpki.profiles import CheckedRequest, check_csr, get_profile, load_csr
from mpki.ra.authorisation import Principal, authorise, visible_organisation
from mpki.ra.views import BatchView, RequestView
from mpki.store import (
    Batch,
    BatchRepository,
    CaRepository,
    CertificateRepository,
    Database,
    DeviceFlagRepository,
    Organisation,
    OrganisationRepository,
    RecoveryCertificates,
    RequestRepository,
)

MAX_BATCH = 50_000
SUBSCRIBER_PROFILES = ("smki-device", "smki-org", "tls-server", "tls-client")
# Device certificates from an organisation's own people approve themselves; the rest wait for an agent.
DEFAULT_APPROVAL = {"smki-device": "auto"}  # every other profile: "review"
APPROVAL_RULES = ("auto", "review", "dual")
KINDS = ("new", "renewal", "rekey", "update")
CHUNK = 2_000
# A batch still "processing" this long after its worker claimed it was left by a worker that stopped.
STALE_AFTER = dt.timedelta(minutes=10)

Progress = Callable[[int, int], None]
# Told (profile, how many) after certificates are issued and their requests updated: the web room counts them.
IssuedHook = Callable[[str, int], None]


@dataclass
class _Seen:
    pairs: set[tuple[str, str]] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


def _spki_sha256(checked: CheckedRequest) -> str:
    spki = checked.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


class Registration:
    """The RA's request desk for one installation."""

    def __init__(
        self,
        database: Database,
        authority: CertificationAuthority,
        max_batch: int = MAX_BATCH,
        *,
        on_issued: IssuedHook | None = None,
    ) -> None:
        self.database = database
        self.authority = authority
        self.max_batch = max_batch
        self.on_issued = on_issued

    # ----- submission ---------------------------------------------------------------------------

    def _organisation_for(self, principal: Principal, organisation: str | None) -> Organisation:
        with self.database.reader() as session:
            repository = OrganisationRepository(session)
            if organisation is not None:
                row = repository.by_name(organisation)
            elif principal.organisation_id is not None:
                row = repository.by_id(principal.organisation_id)
            else:
                raise InvalidRequest("name the organisation the request is for")
            authorise(principal, Action.REQUEST_SUBMIT, row.id)
            return row

    def submit_batch(
        self,
        principal: Principal,
        profile: str,
        csrs: Sequence[bytes],
        organisation: str | None = None,
        *,
        kind: str = "new",
        replaces: str | None = None,
    ) -> BatchView:
        """Store the batch and its items; processing happens in `process_batch` (a worker).

        `kind` renewal (same key), rekey (new key, same identity) or update (changed attributes, always
        reviewed) names the certificate it `replaces`; those go one CSR at a time.
        """
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
        if (kind == "new") != (replaces is None):
            raise InvalidRequest("renewal, rekey and update name the certificate they replace; new requests do not")
        if kind != "new" and len(csrs) != 1:
            raise InvalidRequest(f"a {kind} replaces one certificate: submit one CSR")
        if profile not in SUBSCRIBER_PROFILES:
            try:
                get_profile(profile)
            except NotFound as error:
                raise InvalidRequest(str(error)) from None
            raise InvalidRequest(f"profile {profile} is not requested through the RA")
        if not csrs:
            raise InvalidRequest("a batch needs at least one CSR")
        if len(csrs) > self.max_batch:
            raise InvalidRequest(f"a batch holds at most {self.max_batch:,} CSRs, this one has {len(csrs):,}")
        org = self._organisation_for(principal, organisation)
        now = utcnow()
        with self.database.transaction() as session:
            batch = BatchRepository(session).add(
                Batch(
                    organisation_id=org.id,
                    profile=profile,
                    submitted_by=principal.actor,
                    submitted_at=now,
                    size=len(csrs),
                    status="submitted",
                    processed=0,
                    accepted=0,
                    rejected=0,
                    held=0,
                    issued=0,
                )
            )
            RequestRepository(session).add_many(
                [
                    {
                        "profile": profile,
                        "csr_der": csr,
                        "status": "submitted",
                        "submitted_by": principal.actor,
                        "submitted_at": now,
                        "organisation_id": org.id,
                        "batch_id": batch.id,
                        "item_index": index,
                        "kind": kind,
                        "replaces_serial": replaces.lower() if replaces else None,
                    }
                    for index, csr in enumerate(csrs)
                ]
            )
            append(
                session,
                [
                    AuditRecord(
                        action="batch.submitted",
                        actor=principal.actor,
                        details={"batch": batch.id, "organisation": org.name, "profile": profile, "size": len(csrs)},
                    )
                ],
                at=now,
            )
            return BatchView.of(batch)

    # ----- processing ---------------------------------------------------------------------------

    def process_next(self) -> BatchView | None:
        """Claim the oldest submitted batch and process it; None when there is nothing to do."""
        now = utcnow()
        with self.database.transaction() as session:
            batch_id = BatchRepository(session).claim_next(now, now - STALE_AFTER)
        return None if batch_id is None else self._process_claimed(batch_id)

    def process_batch(self, batch_id: int, progress: Progress | None = None, wait: float = 120.0) -> BatchView:
        """Process one batch now; if another worker claimed it first, wait for that worker to finish."""
        now = utcnow()
        with self.database.transaction() as session:
            claimed = BatchRepository(session).claim(batch_id, now, now - STALE_AFTER)
        if claimed:
            return self._process_claimed(batch_id, progress)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with self.database.reader() as session:
                row = BatchRepository(session).by_id(batch_id)
                if row.status == "completed":
                    return BatchView.of(row)
            time.sleep(0.05)
        raise InvalidRequest(f"batch {batch_id} is still being processed by another worker")

    def _process_claimed(self, batch_id: int, progress: Progress | None = None) -> BatchView:
        with self.database.reader() as session:
            batch = BatchRepository(session).by_id(batch_id)
            org = OrganisationRepository(session).by_id(batch.organisation_id) if batch.organisation_id else None
            rows = [row for row in RequestRepository(session).for_batch(batch_id) if row.status == "submitted"]
            items = [(row.id, row.item_index or 0, row.csr_der, row.submitted_by) for row in rows]
            replacing = {row.id: (row.kind, row.replaces_serial) for row in rows if row.replaces_serial}
            profile_name, size = batch.profile, batch.size
        if org is None:
            raise InvalidRequest(f"batch {batch_id} has no organisation")
        seen = _Seen()
        for start in range(0, len(items), CHUNK):
            self._process_chunk(batch_id, profile_name, org, items[start : start + CHUNK], seen, replacing)
            if progress:
                progress(min(start + CHUNK, len(items)), size)
        with self.database.transaction() as session:
            row = BatchRepository(session).by_id(batch_id)
            row.status = "completed"
            row.completed_at = utcnow()
            append(
                session,
                [
                    AuditRecord(
                        action="batch.completed",
                        actor="mpki-ra",
                        details={"batch": batch_id, "issued": row.issued, "rejected": row.rejected, "held": row.held},
                    )
                ],
            )
            return BatchView.of(row)

    def precheck(self, principal: Principal, profile: str, csr: bytes, organisation: str | None = None) -> None:
        """Refuse a single CSR before anything is stored (the portal's form answers 400 and writes nothing),
        by the same rules intake applies to each batch item."""
        self._check(profile, self._organisation_for(principal, organisation), csr)

    def _check(self, profile_name: str, org: Organisation, csr: bytes) -> CheckedRequest:
        checked = check_csr(get_profile(profile_name), load_csr(csr), self.authority.parameters)
        if profile_name == "smki-org":
            assert checked.eui64 is not None and checked.role is not None
            if checked.eui64.hex not in org.eui64s.split(","):
                raise InvalidRequest(f"EUI-64 {checked.eui64.hex} is not one of {org.name}'s entity identifiers")
            if checked.role.code not in org.roles.split(","):
                raise InvalidRequest(f"{org.name} may not hold role {checked.role.code} ({checked.role.name.lower()})")
        return checked

    def _process_chunk(
        self,
        batch_id: int,
        profile_name: str,
        org: Organisation,
        items: list[tuple[int, int, bytes, str]],
        seen: _Seen,
        replacing: dict[int, tuple[str, str]],
    ) -> None:
        now = utcnow()
        outcome: dict[int, dict[str, Any]] = {}
        checked_by_id: dict[int, CheckedRequest] = {}
        for request_id, _, csr, _ in items:
            try:
                checked_by_id[request_id] = self._check(profile_name, org, csr)
            except MpkiError as error:
                outcome[request_id] = {"status": "rejected", "reason": str(error)}
        digests = {rid: _spki_sha256(c) for rid, c in checked_by_id.items()}
        pairs = {
            rid: (c.eui64.hex, c.key_usage.value)
            for rid, c in checked_by_id.items()
            if profile_name == "smki-device" and c.eui64 is not None and c.key_usage is not None
        }
        with self.database.reader() as session:
            requests = RequestRepository(session)
            certified = requests.certified_keys(set(digests.values()))
            open_pairs = requests.open_identities(set(pairs.values()), exclude_batch=batch_id)
            flagged = DeviceFlagRepository(session).flagged(sorted({eui for eui, _ in pairs.values()}))
        rule = approval_rule(org, profile_name)
        for request_id, checked in checked_by_id.items():
            digest = digests[request_id]
            identity = {
                "eui64": checked.eui64.hex if checked.eui64 else None,
                "key_usage": checked.key_usage.value if checked.key_usage else None,
                "public_key_sha256": digest,
            }
            kind, replaced = replacing.get(request_id, ("new", ""))
            replaced_pair: tuple[str, str] | None = None
            if kind != "new":
                try:
                    replaced_pair = self._check_replacement(kind, replaced, profile_name, org, checked, digest)
                except MpkiError as error:
                    outcome[request_id] = {"status": "rejected", "reason": str(error), **identity}
                    continue
            if kind != "renewal" and (digest in certified or digest in seen.keys):
                reason = "this public key is already certified"
                outcome[request_id] = {"status": "rejected", "reason": reason, **identity}
                continue
            seen.keys.add(digest)
            pair = pairs.get(request_id)
            if pair is not None and pair[0] in flagged:
                seen.pairs.add(pair)
                outcome[request_id] = {"status": "pending", **identity, "hold_reason": _flag_reason(pair[0], flagged)}
                continue
            if pair is not None and pair != replaced_pair and (pair in open_pairs or pair in seen.pairs):
                outcome[request_id] = {
                    "status": "pending",
                    **identity,
                    "hold_reason": (
                        f"duplicate device check: EUI-64 {pair[0]} already has a live {pair[1]} certificate "
                        "or a request in flight"
                    ),
                }
                continue
            if pair is not None:
                seen.pairs.add(pair)
            if kind == "update":
                outcome[request_id] = {
                    "status": "pending",
                    "hold_reason": "an update changes attributes: RA review",
                    **identity,
                }
            elif rule == "auto":
                outcome[request_id] = {"status": "approved", "decided_by": "policy:auto-approve", **identity}
            else:
                waiting = "awaiting two RA approvals" if rule == "dual" else "awaiting RA agent approval"
                outcome[request_id] = {"status": "pending", "hold_reason": waiting, **identity}
        approved = [rid for rid, o in outcome.items() if o["status"] == "approved"]
        csr_by_id = {rid: csr for rid, _, csr, _ in items}
        submitter = {rid: who for rid, _, _, who in items}
        index_of = {rid: index for rid, index, _, _ in items}
        with self.database.transaction() as session:
            RequestRepository(session).update_many(
                [
                    {"id": rid, **o, **({"decided_at": now} if o["status"] != "pending" else {})}
                    for rid, o in outcome.items()
                ]
            )
            append(
                session,
                [
                    AuditRecord(
                        action=f"request.{'held' if o['status'] == 'pending' else o['status']}",
                        actor=o.get("decided_by") or "mpki-ra",
                        request_id=rid,
                        details={
                            "batch": batch_id,
                            "item": index_of[rid],
                            "reason": o.get("reason") or o.get("hold_reason"),
                            "submitted_by": submitter[rid],
                        },
                    )
                    for rid, o in outcome.items()
                ],
                at=now,
            )
        replaces = {rid: replacing[rid][1] for rid in approved if rid in replacing}
        issued = self._issue(approved, csr_by_id, profile_name, "policy:auto-approve", org.id, replaces)
        counts = {
            "rejected": sum(1 for o in outcome.values() if o["status"] == "rejected"),
            "held": sum(1 for o in outcome.values() if o["status"] == "pending"),
        }
        with self.database.transaction() as session:
            row = BatchRepository(session).by_id(batch_id)
            row.processed += len(items)
            row.accepted += len(items) - counts["rejected"]
            row.rejected += counts["rejected"] + (len(approved) - issued)
            row.held += counts["held"]
            row.issued += issued

    def _check_replacement(
        self, kind: str, serial: str, profile_name: str, org: Organisation, checked: CheckedRequest, digest: str
    ) -> tuple[str, str] | None:
        """Renewal, re-key and update replace a live certificate of the same organisation and profile."""
        old, old_request, old_key = self.authority.certificate_record(serial)
        if old.status != "issued":
            raise InvalidRequest(f"certificate {serial} is {old.status}; only a live certificate can be replaced")
        owner = self._organisation_of_request(old_request)
        if owner != org.id:
            raise InvalidRequest(f"certificate {serial} was not issued to {org.name}")
        if old.profile != profile_name:
            raise InvalidRequest(f"certificate {serial} is a {old.profile} certificate, not {profile_name}")
        same_identity = (old.eui64, old.key_usage, old.subject) == (
            checked.eui64.hex if checked.eui64 else None,
            checked.key_usage.value if checked.key_usage else None,
            checked.subject_text,
        )
        if kind in ("renewal", "rekey") and not same_identity:
            raise InvalidRequest(f"a {kind} keeps the identity of certificate {serial}; use update to change it")
        if kind == "renewal":
            if profile_name == "smki-device":
                raise InvalidRequest("device certificates never expire: re-key instead of renewing")
            if digest != old_key:
                raise InvalidRequest("a renewal keeps the certified key; use rekey for a new key")
        if kind == "rekey" and digest == old_key:
            raise InvalidRequest("a re-key needs a new key")
        if old.eui64 and old.key_usage:
            return (old.eui64, old.key_usage)
        return None

    def _organisation_of_request(self, request_id: int | None) -> int | None:
        if request_id is None:
            return None
        with self.database.reader() as session:
            return RequestRepository(session).by_id(request_id).organisation_id

    def _issue(
        self,
        request_ids: list[int],
        csr_by_id: dict[int, bytes],
        profile: str,
        actor: str,
        organisation_id: int | None,
        replaces: dict[int, str] | None = None,
        *,
        re_enrolment: bool = False,
    ) -> int:
        """Hand approved requests to the CA; returns how many were issued (the rest are marked failed).

        A certificate that a renewal, re-key or update replaces is marked superseded once its successor exists.
        `re_enrolment` (an RA agent's decision, never policy) lets a flagged device's new certificate clear
        its flag.
        """
        if not request_ids:
            return 0
        orders = [
            IssuanceOrder(profile, csr_by_id[rid], approved_by=actor, request_id=rid, organisation_id=organisation_id)
            for rid in request_ids
        ]
        results = self.authority.issue_many(orders, actor=actor)
        now = utcnow()
        changes: list[dict[str, Any]] = []
        successors: dict[int, str] = {}
        for rid, result in zip(request_ids, results, strict=True):
            if result.certificate is not None:
                successors[rid] = result.certificate.serial
                changes.append({"id": rid, "status": "issued", "issued_at": now, "certificate_serial": successors[rid]})
            else:
                changes.append({"id": rid, "status": "failed", "reason": result.error})
        with self.database.transaction() as session:
            RequestRepository(session).update_many(changes)
        if self.on_issued is not None and successors:
            self.on_issued(profile, len(successors))
        for rid, new_serial in successors.items():
            old = (replaces or {}).get(rid)
            if old:
                self.authority.supersede(old, by_serial=new_serial, actor=actor)
        if re_enrolment and profile == "smki-device":
            devices = [
                (rid, r.certificate.eui64, r.certificate.serial)
                for rid, r in zip(request_ids, results, strict=True)
                if r.certificate is not None and r.certificate.eui64
            ]
            self._settle_re_enrolments(devices, actor)
        return len(successors)

    def _settle_re_enrolments(self, issued: list[tuple[int, str, str]], actor: str) -> None:
        """For each flagged device that just got an approved certificate: clear the flag and supersede the
        certificates the recovery marked not in use, with the audit events, in one transaction."""
        if not issued:
            return
        now = utcnow()
        with self.database.transaction() as session:
            flags = DeviceFlagRepository(session)
            flagged = flags.flagged([eui for _, eui, _ in issued])
            records: list[AuditRecord] = []
            for request_id, eui64, new_serial in issued:
                if eui64 not in flagged or not flags.clear(eui64, new_serial, now):
                    continue  # not flagged, or already cleared by an earlier serial of this call or another node
                old_rows = RecoveryCertificates(session).not_in_use_of_device(eui64)
                old = [(row.id, row.serial, row.ca_id) for row in old_rows]
                CertificateRepository(session).supersede_live([row_id for row_id, _, _ in old])
                cas = CaRepository(session)
                records += [
                    AuditRecord(
                        action="certificate.superseded",
                        actor=actor,
                        ca=cas.by_id(ca_id).name,
                        serial=serial,
                        details={"superseded_by": new_serial, "reason": "device re-enrolled after key compromise"},
                    )
                    for _, serial, ca_id in old
                ]
                records.append(
                    AuditRecord(
                        action="device.re_enrolled",
                        actor=actor,
                        serial=new_serial,
                        request_id=request_id,
                        details={
                            "eui64": eui64,
                            "recovery": flagged[eui64],
                            "new_serial": new_serial,
                            "superseded": [serial for _, serial, _ in old],
                        },
                    )
                )
            if records:
                append(session, records, at=now)

    # ----- decisions ----------------------------------------------------------------------------

    def decide(self, principal: Principal, request_id: int, approve: bool, reason: str | None = None) -> RequestView:
        """An RA agent (or the organisation's RA officer) approves or rejects a held request.

        Under a `dual` rule the first approval is recorded and the request waits for a second, different
        approver; the submitter may never approve their own request.
        """
        with self.database.reader() as session:
            row = RequestRepository(session).by_id(request_id)
            authorise(principal, Action.REQUEST_DECIDE, row.organisation_id)
            org = OrganisationRepository(session).by_id(row.organisation_id) if row.organisation_id else None
            status, submitted_by, first = row.status, row.submitted_by, row.first_approved_by
        if status != "pending":
            raise InvalidRequest(f"request {request_id} is {status}, not pending review")
        if submitted_by == principal.actor:
            raise Forbidden("dual control: the approver must not be the submitter")
        if not approve and not (reason and reason.strip()):
            raise InvalidRequest("a rejection needs a reason")
        dual = org is not None and approval_rule(org, row.profile) == "dual"
        if approve and dual and first == principal.actor:
            raise Forbidden("dual control: a second, different approver is needed")
        now = utcnow()
        with self.database.transaction() as session:
            row = RequestRepository(session).by_id(request_id)
            if row.status != "pending":
                raise InvalidRequest(f"request {request_id} is {row.status}, not pending review")
            if approve and dual and row.first_approved_by is None:
                row.first_approved_by = principal.actor
                row.hold_reason = f"first approval by {principal.actor}; awaiting a second approver"
                append(
                    session,
                    [
                        AuditRecord(
                            action="request.first_approval",
                            actor=principal.actor,
                            request_id=request_id,
                            details={"reason": reason},
                        )
                    ],
                )
                return RequestView.of(row)
            row.status = "approved" if approve else "rejected"
            row.decided_by = principal.actor
            row.decided_at = now
            row.reason = reason
            append(
                session,
                [
                    AuditRecord(
                        action="request.approved" if approve else "request.rejected",
                        actor=principal.actor,
                        request_id=request_id,
                        details={"reason": reason},
                    )
                ],
            )
            csr, profile, batch_id, replaced = row.csr_der, row.profile, row.batch_id, row.replaces_serial
            organisation_id = row.organisation_id
        if approve:
            replaces = {request_id: replaced} if replaced else None
            issued = self._issue(
                [request_id], {request_id: csr}, profile, principal.actor, organisation_id, replaces, re_enrolment=True
            )
            if batch_id is not None:
                with self.database.transaction() as session:
                    batch = BatchRepository(session).by_id(batch_id)
                    batch.held -= 1
                    batch.issued += issued
                    batch.rejected += 1 - issued
        elif batch_id is not None:
            with self.database.transaction() as session:
                batch = BatchRepository(session).by_id(batch_id)
                batch.held -= 1
                batch.rejected += 1
                batch.accepted -= 1
        return self.request(principal, request_id)

    # ----- reading ------------------------------------------------------------------------------

    def request(self, principal: Principal, request_id: int) -> RequestView:
        with self.database.reader() as session:
            row = RequestRepository(session).by_id(request_id)
            authorise(principal, Action.REQUEST_VIEW, row.organisation_id)
            return RequestView.of(row)

    def requests(
        self, principal: Principal, *, status: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[RequestView]:
        only = visible_organisation(principal, Action.REQUEST_VIEW)
        with self.database.reader() as session:
            rows = RequestRepository(session).search(
                organisation_id=only, status=status, after_id=after_id, limit=limit
            )
            return [RequestView.of(row) for row in rows]

    def batch_status(self, principal: Principal, batch_id: int) -> BatchView:
        """Status, counts and timeline only: cheap enough to poll."""
        with self.database.reader() as session:
            row = BatchRepository(session).by_id(batch_id)
            authorise(principal, Action.REQUEST_VIEW, row.organisation_id)
            return BatchView.of(row)

    def batch(self, principal: Principal, batch_id: int) -> tuple[BatchView, list[RequestView]]:
        with self.database.reader() as session:
            row = BatchRepository(session).by_id(batch_id)
            authorise(principal, Action.REQUEST_VIEW, row.organisation_id)
            items = [RequestView.of(r) for r in RequestRepository(session).for_batch(batch_id)]
            return BatchView.of(row), items

    def batches(self, principal: Principal, after_id: int = 0, limit: int = 100) -> list[BatchView]:
        only = visible_organisation(principal, Action.REQUEST_VIEW)
        with self.database.reader() as session:
            return [BatchView.of(r) for r in BatchRepository(session).search(only, after_id, limit)]

    def batch_certificates(self, principal: Principal, batch_id: int) -> list[bytes]:
        """DER of every certificate issued for the batch, in item order (for pickup)."""
        _, items = self.batch(principal, batch_id)
        by_request = self.authority.certificates_for_requests([item.id for item in items if item.serial])
        return [by_request[item.id] for item in items if item.id in by_request]


def _flag_reason(eui64: str, flagged: dict[str, int]) -> str:
    return (
        f"device EUI-64 {eui64} was flagged by recovery {flagged[eui64]} (device key compromise): "
        "re-enrolment needs RA approval"
    )


def approval_rule(org: Organisation, profile: str) -> str:
    """auto, review or dual: the organisation's rule for the profile, else the service default."""
    try:
        rules = json.loads(org.approval_policy) if org.approval_policy else {}
    except ValueError:
        rules = {}
    rule = rules.get(profile) if isinstance(rules, dict) else None
    return str(rule) if rule in APPROVAL_RULES else DEFAULT_APPROVAL.get(profile, "review")
