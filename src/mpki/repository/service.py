"""The public repository: search certificates, download them with their chains, list CAs and CRLs.

Read-only and without login, as the SMKI Repository: anyone may look up a certificate by serial, by
EUI-64 (an organisation's subject or a device's SAN), by organisation, role, key usage or status.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.orm import Session

from mpki.config import Settings
from mpki.domain import (
    CertificateStatus,
    Eui64,
    InvalidRequest,
    KeyUsageChoice,
    NotFound,
    RemotePartyRole,
    format_serial,
    parse_serial,
)
from mpki.profiles import ProfileKind, get_profile
from mpki.repository.views import CaEntry, CertificateEntry, CrlEntry, SearchFilters, SearchPage, reason_name
from mpki.store import (
    CaListing,
    CertificateCriteria,
    CertificateListing,
    CrlRepository,
    Database,
    RepositoryQueries,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# No filter value the repository understands is longer; anything longer is refused before any SQL.
MAX_FILTER_LENGTH = 128
# RFC 5280 4.1.2.2: a serial is at most 20 octets.
MAX_SERIAL_BITS = 160

_E = TypeVar("_E")
_V = TypeVar("_V", bound="DataclassInstance")


def _view(view: type[_V], row: object, **computed: object) -> _V:
    """A view from a stored listing: fields of the same name are copied, the rest are `computed`."""
    copied = {field.name: getattr(row, field.name) for field in fields(view) if field.name not in computed}
    return view(**copied, **computed)


def _choice(label: str, text: str, choices: list[str]) -> str:
    """Match a fixed vocabulary case-insensitively, naming the choices when nothing matches."""
    for choice in choices:
        if choice.lower() == text.lower():
            return choice
    raise InvalidRequest(f"{label} {text!r} is not one of {', '.join(choices)}")


def normalise_serial(text: str) -> str:
    """The stored form (lower-case hex, no leading zeros) of a serial given in any accepted spelling."""
    value = parse_serial(text)
    if value.bit_length() > MAX_SERIAL_BITS:
        raise InvalidRequest(f"serial {text!r} is longer than 20 octets (RFC 5280)")
    return format_serial(value)


class Repository:
    """Reads only; each call is one read-only session, so it never blocks issuance."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    @property
    def base_url(self) -> str:
        """The public URL that JSON links (and the certificates' caIssuers) are built on."""
        return self.settings.public_url

    # ----- certificates -------------------------------------------------------------------------

    def search(self, filters: SearchFilters, *, after: int = 0, limit: int = 100) -> SearchPage:
        """Certificates matching every given filter, oldest first, `limit` at a time after id `after`.
        A malformed filter is an InvalidRequest; an organisation nobody has is NotFound."""
        given = filters.given()
        for name, value in given.items():
            if len(value) > MAX_FILTER_LENGTH:
                raise InvalidRequest(f"{name} is longer than {MAX_FILTER_LENGTH} characters")
        usages = [u.value for u in KeyUsageChoice]
        statuses = [s.value for s in CertificateStatus]
        criteria = CertificateCriteria(
            serial=normalise_serial(given["serial"]) if "serial" in given else None,
            eui64=Eui64.parse(given["eui64"]).hex if "eui64" in given else None,
            role_code=RemotePartyRole.from_name(given["role"]).code if "role" in given else None,
            key_usage=_choice("key usage", given["key_usage"], usages) if "key_usage" in given else None,
            status=_choice("status", given["status"], statuses) if "status" in given else None,
        )
        with self.database.reader() as session:
            queries = RepositoryQueries(session)
            if "organisation" in given:
                organisation_id = queries.organisation_id(given["organisation"])
                if organisation_id is None:
                    raise NotFound(f"no organisation named {given['organisation']!r}")
                criteria = replace(criteria, organisation_id=organisation_id)
            entries = self._entries(queries, queries.search(criteria, after_id=after, limit=limit))
        return SearchPage(entries, entries[-1].id if entries and len(entries) == limit else None)

    def certificate(self, serial: str, ca: str | None = None) -> tuple[CertificateEntry, bytes]:
        """The certificate's entry and DER."""
        return self._with_certificate(serial, ca, lambda session, entry, row: (entry, self._der(session, row)))

    def chain(self, serial: str, ca: str | None = None) -> list[bytes]:
        """DER of the certificate, its issuing CA and so on up to the root: leaf first."""

        def build(session: Session, _entry: CertificateEntry, row: CertificateListing) -> list[bytes]:
            return [self._der(session, row), *self._ca_chain(RepositoryQueries(session), row.ca_id)]

        return self._with_certificate(serial, ca, build)

    # ----- CAs and CRLs -------------------------------------------------------------------------

    def cas(self) -> list[CaEntry]:
        with self.database.reader() as session:
            rows = RepositoryQueries(session).cas()
        names = {row.id: row.name for row in rows}
        return [
            _view(
                CaEntry,
                row,
                parent=names.get(row.parent_id) if row.parent_id is not None else None,
                revocation_reason=reason_name(row.revocation_reason),
            )
            for row in rows
        ]

    def ca_certificate(self, name: str) -> bytes:
        """The CA's certificate (DER): what a certificate's caIssuers URL fetches."""
        return self.ca_chain(name)[0]

    def ca_chain(self, name: str) -> list[bytes]:
        """DER of the CA's certificate and its ancestors up to the root."""
        with self.database.reader() as session:
            queries = RepositoryQueries(session)
            found = [row for row in queries.cas() if row.name == name]
            if not found:
                raise NotFound(f"no CA named {name!r}")
            return self._ca_chain(queries, found[0].id)

    def crls(self) -> list[CrlEntry]:
        """The newest full CRL (a root's is its ARL) and delta CRL of each CA that has published one."""
        with self.database.reader() as session:
            cas = RepositoryQueries(session).cas()
            newest = CrlRepository(session).latest_numbers()
        entries = []
        for ca in cas:
            for kind in ("full", "delta"):
                if (ca.id, kind) in newest:
                    number, this_update, next_update = newest[(ca.id, kind)]
                    is_arl = kind == "full" and get_profile(ca.profile).kind is ProfileKind.ROOT
                    entries.append(CrlEntry(ca.name, kind, is_arl, number, this_update, next_update))
        return entries

    # ----- helpers ------------------------------------------------------------------------------

    def _with_certificate(
        self,
        serial: str,
        ca: str | None,
        then: Callable[[Session, CertificateEntry, CertificateListing], _E],
    ) -> _E:
        """Find one certificate by serial (and CA) and go on with it in the same read session."""
        text = normalise_serial(serial)
        with self.database.reader() as session:
            queries = RepositoryQueries(session)
            ca_id = None
            if ca:
                ca_id = next((row.id for row in queries.cas() if row.name == ca), None)
                if ca_id is None:
                    raise NotFound(f"no CA named {ca!r}")
            rows = queries.by_serial(text, ca_id)
            if not rows:
                raise NotFound(f"no certificate with serial {text}" + (f" issued by {ca}" if ca else ""))
            if len(rows) > 1:
                raise NotFound(f"serial {text} was issued by several CAs; name one with ?ca=")
            [entry] = self._entries(queries, rows)
            return then(session, entry, rows[0])

    @staticmethod
    def _entries(queries: RepositoryQueries, rows: list[CertificateListing]) -> list[CertificateEntry]:
        cas: dict[int, CaListing] = {row.id: row for row in queries.cas()} if rows else {}
        return [
            _view(
                CertificateEntry,
                row,
                ca=cas[row.ca_id].name,
                issuer=cas[row.ca_id].subject,
                revocation_reason=reason_name(row.revocation_reason),
            )
            for row in rows
        ]

    @staticmethod
    def _der(session: Session, row: CertificateListing) -> bytes:
        der = RepositoryQueries(session).certificate_der(row.id)
        if der is None:
            raise NotFound(f"no certificate with serial {row.serial}")
        return der

    @staticmethod
    def _ca_chain(queries: RepositoryQueries, ca_id: int) -> list[bytes]:
        """The CA and its ancestors' certificates, walking parent links (a few rows, no recursion in SQL)."""
        parents = {row.id: row.parent_id for row in queries.cas()}
        path = [ca_id]
        while (parent := parents.get(path[-1])) is not None and parent not in path:
            path.append(parent)
        der = queries.ca_certificates(path)
        return [der[i] for i in path if i in der]
