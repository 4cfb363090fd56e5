"""Repositories: the only place SQL is written (rule 2). Each takes the caller's session (unit of work)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from mpki.domain import NotFound, SerialStatus
from mpki.store.schema import (
    ApiToken,
    AuditEvent,
    AuditHead,
    Batch,
    CertificateAuthority,
    CertificateRequest,
    IssuedCertificate,
    Organisation,
    Person,
    SerialReservation,
)


class CaRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, ca: CertificateAuthority) -> CertificateAuthority:
        self.session.add(ca)
        self.session.flush()
        return ca

    def by_name(self, name: str) -> CertificateAuthority:
        found = self.session.scalar(select(CertificateAuthority).where(CertificateAuthority.name == name))
        if found is None:
            raise NotFound(f"no CA named {name!r}")
        return found

    def by_id(self, ca_id: int) -> CertificateAuthority:
        found = self.session.get(CertificateAuthority, ca_id)
        if found is None:
            raise NotFound(f"no CA with id {ca_id}")
        return found

    def all(self) -> Sequence[CertificateAuthority]:
        return self.session.scalars(select(CertificateAuthority).order_by(CertificateAuthority.id)).all()

    def issuing_for(self, profile: str) -> CertificateAuthority:
        """The active CA configured to issue `profile` (the newest, if several)."""
        for ca in reversed(self.all()):
            if ca.status == "active" and profile in ca.issues_profiles.split(","):
                return ca
        raise NotFound(f"no active CA issues profile {profile!r}; run `mpki init --dev` or a ceremony first")


class SerialRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def reserve(self, ca_id: int, serials: Iterable[str], owner: str, at: dt.datetime) -> None:
        rows = [
            {
                "ca_id": ca_id,
                "serial": s,
                "status": SerialStatus.RESERVED.value,
                "owner": owner,
                "reserved_at": at,
            }
            for s in serials
        ]
        if rows:
            self.session.execute(insert(SerialReservation), rows)

    def settle(self, ca_id: int, serials: Sequence[str], status: SerialStatus, at: dt.datetime) -> int:
        """Move reserved serials to used or abandoned; returns how many moved."""
        moved = 0
        for start in range(0, len(serials), 500):
            chunk = serials[start : start + 500]
            result = self.session.execute(
                update(SerialReservation)
                .where(
                    SerialReservation.ca_id == ca_id,
                    SerialReservation.serial.in_(chunk),
                    SerialReservation.status == SerialStatus.RESERVED.value,
                )
                .values(status=status.value, settled_at=at)
                .execution_options(synchronize_session=False)
            )
            moved += int(getattr(result, "rowcount", 0) or 0)
        return moved

    def reserved(self) -> Sequence[SerialReservation]:
        return self.session.scalars(
            select(SerialReservation).where(SerialReservation.status == SerialStatus.RESERVED.value)
        ).all()

    def counts(self) -> dict[str, int]:
        rows = self.session.execute(
            select(SerialReservation.status, func.count()).group_by(SerialReservation.status)
        ).all()
        return {status: int(count) for status, count in rows}

    def all(self) -> Sequence[SerialReservation]:
        return self.session.scalars(select(SerialReservation).order_by(SerialReservation.id)).all()


class CertificateRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(IssuedCertificate), rows)

    def by_serial(self, serial: str, ca_id: int | None = None) -> IssuedCertificate:
        query = select(IssuedCertificate).where(IssuedCertificate.serial == serial)
        if ca_id is not None:
            query = query.where(IssuedCertificate.ca_id == ca_id)
        found = self.session.scalars(query).all()
        if not found:
            raise NotFound(f"no certificate with serial {serial}")
        if len(found) > 1:
            raise NotFound(f"serial {serial} is ambiguous across CAs; name the CA")
        return found[0]

    def search(
        self,
        *,
        profile: str | None = None,
        eui64: str | None = None,
        status: str | None = None,
        limit: int = 100,
        after_id: int = 0,
    ) -> Sequence[IssuedCertificate]:
        query = select(IssuedCertificate).where(IssuedCertificate.id > after_id)
        if profile:
            query = query.where(IssuedCertificate.profile == profile)
        if eui64:
            query = query.where(IssuedCertificate.eui64 == eui64)
        if status:
            query = query.where(IssuedCertificate.status == status)
        return self.session.scalars(query.order_by(IssuedCertificate.id).limit(limit)).all()

    def serials_for(self, ca_id: int, serials: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(serials), 500):
            chunk = serials[start : start + 500]
            found.update(
                self.session.scalars(
                    select(IssuedCertificate.serial).where(
                        IssuedCertificate.ca_id == ca_id, IssuedCertificate.serial.in_(chunk)
                    )
                )
            )
        return found

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(IssuedCertificate)) or 0)

    def by_serials(self, ca_id: int, serials: Sequence[str]) -> list[IssuedCertificate]:
        found: list[IssuedCertificate] = []
        for start in range(0, len(serials), 500):
            found.extend(
                self.session.scalars(
                    select(IssuedCertificate).where(
                        IssuedCertificate.ca_id == ca_id,
                        IssuedCertificate.serial.in_(list(serials[start : start + 500])),
                    )
                )
            )
        return found

    def supersede_live(self, ids: Sequence[int]) -> int:
        """Mark superseded those still issued and unrevoked; the count tells the caller whether all were."""
        moved = 0
        for start in range(0, len(ids), 500):
            result = self.session.execute(
                update(IssuedCertificate)
                .where(
                    IssuedCertificate.id.in_(list(ids[start : start + 500])),
                    IssuedCertificate.status == "issued",
                    IssuedCertificate.revoked_at.is_(None),
                )
                .values(status="superseded")
                .execution_options(synchronize_session=False)
            )
            moved += int(getattr(result, "rowcount", 0))
        return moved

    def set_status(self, ids: Sequence[int], status: str) -> None:
        if ids:
            self.session.execute(
                update(IssuedCertificate)
                .where(IssuedCertificate.id.in_(list(ids)))
                .values(status=status)
                .execution_options(synchronize_session=False)
            )

    def der_for_requests(self, request_ids: Sequence[int]) -> dict[int, bytes]:
        """The newest certificate of each request: after an issuing-CA recovery, the replacement."""
        found: dict[int, bytes] = {}
        for start in range(0, len(request_ids), 500):
            rows = self.session.execute(
                select(IssuedCertificate.request_id, IssuedCertificate.der)
                .where(IssuedCertificate.request_id.in_(request_ids[start : start + 500]))
                .order_by(IssuedCertificate.id)
            ).all()
            found.update({int(rid): bytes(der) for rid, der in rows if rid is not None})
        return found


class RequestRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, request: CertificateRequest) -> CertificateRequest:
        self.session.add(request)
        self.session.flush()
        return request

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(CertificateRequest), rows)

    def update_many(self, changes: list[dict[str, Any]]) -> None:
        """Each dict has `id` and the columns to set (ORM bulk UPDATE by primary key)."""
        if changes:
            self.session.execute(update(CertificateRequest), changes)

    def by_id(self, request_id: int) -> CertificateRequest:
        found = self.session.get(CertificateRequest, request_id)
        if found is None:
            raise NotFound(f"no request {request_id}")
        return found

    def for_batch(self, batch_id: int) -> Sequence[CertificateRequest]:
        return self.session.scalars(
            select(CertificateRequest)
            .where(CertificateRequest.batch_id == batch_id)
            .order_by(CertificateRequest.item_index)
        ).all()

    def search(
        self,
        *,
        organisation_id: int | None = None,
        status: str | None = None,
        batch_id: int | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> Sequence[CertificateRequest]:
        query = select(CertificateRequest).where(CertificateRequest.id > after_id)
        if organisation_id is not None:
            query = query.where(CertificateRequest.organisation_id == organisation_id)
        if status is not None:
            query = query.where(CertificateRequest.status == status)
        if batch_id is not None:
            query = query.where(CertificateRequest.batch_id == batch_id)
        return self.session.scalars(query.order_by(CertificateRequest.id).limit(limit)).all()

    def count_by_status(self, statuses: Sequence[str]) -> dict[str, int]:
        """How many requests are in each of `statuses` (by the status index; for a metrics scrape)."""
        rows = self.session.execute(
            select(CertificateRequest.status, func.count())
            .where(CertificateRequest.status.in_(list(statuses)))
            .group_by(CertificateRequest.status)
        ).all()
        return {str(status): int(count) for status, count in rows}

    def open_identities(self, pairs: set[tuple[str, str]], exclude_batch: int | None) -> set[tuple[str, str]]:
        """(EUI-64, key usage) pairs that already have a live certificate or a request still in flight."""
        found: set[tuple[str, str]] = set()
        eui64s = sorted({eui for eui, _ in pairs})
        for start in range(0, len(eui64s), 500):
            chunk = eui64s[start : start + 500]
            certified = self.session.execute(
                select(IssuedCertificate.eui64, IssuedCertificate.key_usage).where(
                    IssuedCertificate.eui64.in_(chunk), IssuedCertificate.status == "issued"
                )
            ).all()
            in_flight_query = select(CertificateRequest.eui64, CertificateRequest.key_usage).where(
                CertificateRequest.eui64.in_(chunk),
                CertificateRequest.status.in_(("pending", "approved")),
            )
            if exclude_batch is not None:
                in_flight_query = in_flight_query.where(
                    (CertificateRequest.batch_id.is_(None)) | (CertificateRequest.batch_id != exclude_batch)
                )
            in_flight = self.session.execute(in_flight_query).all()
            found.update((str(e), str(k)) for e, k in [*certified, *in_flight] if (e, k) in pairs)
        return found

    def certified_keys(self, digests: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(digests)
        for start in range(0, len(ordered), 500):
            found.update(
                self.session.scalars(
                    select(IssuedCertificate.public_key_sha256).where(
                        IssuedCertificate.public_key_sha256.in_(ordered[start : start + 500])
                    )
                )
            )
        return found


class BatchRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, batch: Batch) -> Batch:
        self.session.add(batch)
        self.session.flush()
        return batch

    def by_id(self, batch_id: int) -> Batch:
        found = self.session.get(Batch, batch_id)
        if found is None:
            raise NotFound(f"no batch {batch_id}")
        return found

    def claim_next(self, at: dt.datetime, stale_before: dt.datetime) -> int | None:
        """Take the oldest submitted batch (or one whose worker stopped before `stale_before`)."""
        candidate = self.session.scalar(
            select(Batch.id)
            .where((Batch.status == "submitted") | ((Batch.status == "processing") & (Batch.started_at < stale_before)))
            .order_by(Batch.id)
            .limit(1)
        )
        if candidate is None:
            return None
        return candidate if self.claim(candidate, at, stale_before) else None

    def claim(self, batch_id: int, at: dt.datetime, stale_before: dt.datetime) -> bool:
        """Atomically move one batch to processing; False when another worker holds it."""
        result = self.session.execute(
            update(Batch)
            .where(
                Batch.id == batch_id,
                (Batch.status == "submitted") | ((Batch.status == "processing") & (Batch.started_at < stale_before)),
            )
            .values(status="processing", started_at=at)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def count_by_status(self, statuses: Sequence[str]) -> dict[str, int]:
        """How many batches are in each of `statuses` (by the status index; for a metrics scrape)."""
        rows = self.session.execute(
            select(Batch.status, func.count()).where(Batch.status.in_(list(statuses))).group_by(Batch.status)
        ).all()
        return {str(status): int(count) for status, count in rows}

    def search(self, organisation_id: int | None, after_id: int = 0, limit: int = 100) -> Sequence[Batch]:
        query = select(Batch).where(Batch.id > after_id)
        if organisation_id is not None:
            query = query.where(Batch.organisation_id == organisation_id)
        return self.session.scalars(query.order_by(Batch.id).limit(limit)).all()


class AuditRepository:
    """Storage for the audit chain; the chain's rules live in `mpki.audit`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> AuditHead:
        """Lock the tip row for the rest of the transaction (SQLite: BEGIN IMMEDIATE already holds it)."""
        head = self.session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
        if head is None:
            raise NotFound("the audit chain has no head row; run the database migrations")
        return head

    def head(self) -> AuditHead | None:
        """The tip as the database has it now (never a copy cached earlier in this session)."""
        return self.session.get(AuditHead, 1, populate_existing=True)

    def append(self, rows: list[dict[str, Any]], new_seq: int, new_hash: str) -> None:
        self.session.execute(insert(AuditEvent), rows)
        self.session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=new_seq, hash=new_hash))

    def iterate(self, batch: int = 5000, after: int | None = None) -> Iterator[AuditEvent]:
        """Every event (after seq `after`, if given) in sequence order, read in keyset pages to bound memory.

        With no `after` there is no lower bound, so a row forged at seq 0 or below is still seen.
        """
        last = after
        while True:
            query = select(AuditEvent)
            if last is not None:
                query = query.where(AuditEvent.seq > last)
            page = self.session.scalars(query.order_by(AuditEvent.seq).limit(batch)).all()
            if not page:
                return
            yield from page
            last = page[-1].seq
            self.session.expunge_all()

    def by_action(self, action: str) -> Sequence[AuditEvent]:
        return self.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        ).all()


class OrganisationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, organisation: Organisation) -> Organisation:
        self.session.add(organisation)
        self.session.flush()
        return organisation

    def by_name(self, name: str) -> Organisation:
        found = self.session.scalar(select(Organisation).where(Organisation.name == name))
        if found is None:
            raise NotFound(f"no organisation named {name!r}")
        return found

    def by_id(self, organisation_id: int) -> Organisation:
        found = self.session.get(Organisation, organisation_id)
        if found is None:
            raise NotFound(f"no organisation with id {organisation_id}")
        return found

    def exists(self, name: str) -> bool:
        return self.session.scalar(select(func.count()).where(Organisation.name == name)) != 0

    def all(self, only_id: int | None = None) -> Sequence[Organisation]:
        query = select(Organisation).order_by(Organisation.id)
        if only_id is not None:
            query = query.where(Organisation.id == only_id)
        return self.session.scalars(query).all()


class PersonRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, person: Person) -> Person:
        self.session.add(person)
        self.session.flush()
        return person

    def by_email(self, email: str) -> Person:
        found = self.session.scalar(select(Person).where(Person.email == email))
        if found is None:
            raise NotFound(f"no person with email {email!r}")
        return found

    def exists(self, email: str) -> bool:
        return self.session.scalar(select(func.count()).where(Person.email == email)) != 0

    def by_id(self, person_id: int) -> Person:
        found = self.session.get(Person, person_id)
        if found is None:
            raise NotFound(f"no person with id {person_id}")
        return found

    def all(self, organisation_id: int | None = None) -> Sequence[Person]:
        query = select(Person).order_by(Person.id)
        if organisation_id is not None:
            query = query.where(Person.organisation_id == organisation_id)
        return self.session.scalars(query).all()


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token

    def live_by_hash(self, token_sha256: str) -> ApiToken | None:
        return self.session.scalar(
            select(ApiToken).where(ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None))
        )
