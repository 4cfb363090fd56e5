"""The OCSP responder (RFC 6960): answers from pre-signed responses, so a lookup, not a signature.

A response for one certificate without a nonce is signed ahead of time, stored, and kept in each
serving process's memory; a request with a nonce (RFC 8954) or for several certificates is signed
on the spot. Revocation drops the stored response in the same transaction and signs a new one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from mpki.asn1.ocsp import CertId, OcspRequestInfo, SingleStatus, check_nonce, parse_request_pyasn1
from mpki.ca.ocsp import OcspSigner, unsuccessful
from mpki.ca.status_signer import StatusSigner
from mpki.config import Settings
from mpki.domain import InvalidRequest, KeyStoreError, MpkiError, format_serial, utcnow
from mpki.status.issuers import IssuerIndex, KnownIssuer, known_issuer
from mpki.store import CaRepository, CertificateState, Database, OcspRepository, RevocationRepository

log = logging.getLogger("mpki.status.ocsp")

MALFORMED = unsuccessful("MALFORMED_REQUEST")
UNAUTHORIZED = unsuccessful("UNAUTHORIZED")
INTERNAL_ERROR = unsuccessful("INTERNAL_ERROR")
TRY_LATER = unsuccessful("TRY_LATER")
PRESIGN_CHUNK = 1000
Progress = Callable[[int], None]
CacheKey = tuple[str, bytes, bytes, int]  # hash algorithm, issuer name hash, issuer key hash, serial
# What `cryptography` raises for a request it will not read: malformed, several certificates, a hash it lacks.
UNREADABLE = (ValueError, NotImplementedError, UnsupportedAlgorithm, x509.UnsupportedGeneralNameType)


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    """What the HTTP layer sends: the DER, and for a cacheable GET how long it may be cached."""

    der: bytes
    max_age: int = 0


class ResponseCache:
    """A bounded map of signed responses by CertID; entries expire before their nextUpdate."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[CacheKey, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: CacheKey, now: float) -> tuple[bytes, float] | None:
        found = self._entries.get(key)
        if found is None or found[1] <= now:
            return None
        return found

    def put(self, key: CacheKey, der: bytes, expires: float) -> None:
        with self._lock:
            if len(self._entries) >= self.capacity:
                for old in list(itertools.islice(self._entries, max(1, self.capacity // 10))):
                    self._entries.pop(old, None)
            self._entries[key] = (der, expires)

    def drop(self, issuer: KnownIssuer, serial: int) -> None:
        with self._lock:
            for algorithm, key_hash in issuer.key_hashes.items():
                self._entries.pop((algorithm, issuer.name_hashes[algorithm], key_hash, serial), None)

    def drop_issuer(self, issuer: KnownIssuer) -> None:
        """Forget every answer about the CA's certificates (it was revoked): a scan, as rare as that is."""
        names = {
            (algorithm, issuer.name_hashes[algorithm], key_hash) for algorithm, key_hash in issuer.key_hashes.items()
        }
        with self._lock:
            for key in [key for key in self._entries if key[:3] in names]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def _status_of(state: CertificateState | None) -> tuple[str, dt.datetime | None, int | None]:
    if state is None:
        return "unknown", None, None
    if state.revoked_at is not None:
        return "revoked", state.revoked_at.replace(microsecond=0), state.reason
    return "good", None, None


class OcspService:
    """Answers OCSP requests for every CA of the installation, through each CA's delegated responder."""

    def __init__(self, settings: Settings, database: Database, signer: StatusSigner) -> None:
        self.settings = settings
        self.database = database
        self.signer = signer
        self.cache = ResponseCache(settings.status.ocsp_cache_entries)
        self._signers: dict[int, OcspSigner] = {}
        self._signers_lock = threading.Lock()
        self._index = IssuerIndex([])
        self._index_ca_ids: frozenset[int] = frozenset()
        self._polled_at = utcnow()
        self.reload_issuers()

    # ----- the hot path ---------------------------------------------------------------------------

    def answer_cached(self, request_der: bytes) -> OcspAnswer | None:
        """The answer if it is a plain single-certificate request already in memory; else None."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            if request.extensions:
                return None
            algorithm, serial = request.hash_algorithm.name, request.serial_number
            key = (algorithm, request.issuer_name_hash, request.issuer_key_hash, serial)
        except UNREADABLE:
            return None
        found = self.cache.get(key, time.time())
        if found is None:
            return None
        return OcspAnswer(found[0], self._max_age(found[1]))

    def answer(self, request_der: bytes) -> OcspAnswer:
        """Any request: malformed -> malformedRequest, an issuer not ours -> unauthorized."""
        try:
            parsed = self._parse(request_der)
        except InvalidRequest:
            return OcspAnswer(MALFORMED)
        issuers = {self._index.find(c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash) for c in parsed.cert_ids}
        if None in issuers or len(issuers) != 1:
            # A delegated responder speaks for one CA only: several issuers in one request cannot be signed.
            return OcspAnswer(UNAUTHORIZED)
        [issuer] = issuers
        assert issuer is not None
        try:
            if parsed.nonce is None and len(parsed.cert_ids) == 1:
                return self._answer_cacheable(issuer, parsed.cert_ids[0])
            return OcspAnswer(self._sign_now(issuer, list(parsed.cert_ids), parsed.nonce))
        except KeyStoreError:
            log.warning("OCSP: cannot sign for %s: the keystore is not active", issuer.name)
            return OcspAnswer(TRY_LATER)
        except Exception:  # a relying party gets an OCSP answer, never an HTTP 500 (RFC 6960 internalError)
            log.exception("OCSP: answering for %s failed", issuer.name)
            return OcspAnswer(INTERNAL_ERROR)

    def _parse(self, der: bytes) -> OcspRequestInfo:
        try:
            request = ocsp.load_der_ocsp_request(der)
            extensions = list(request.extensions)
            cert_id = CertId(
                request.hash_algorithm.name, request.issuer_name_hash, request.issuer_key_hash, request.serial_number
            )
        except UNREADABLE:
            # several certificates, a CertID hash cryptography lacks, or malformed: pyasn1 says which
            parsed = parse_request_pyasn1(der)
        else:
            nonce = None
            for extension in extensions:
                if isinstance(extension.value, x509.OCSPNonce):
                    nonce = extension.value.nonce
                    check_nonce(nonce)
            parsed = OcspRequestInfo((cert_id,), nonce)
        if any(c.serial < 0 for c in parsed.cert_ids):
            raise InvalidRequest("a certificate serial number is never negative (RFC 5280 4.1.2.2)")
        return parsed

    def _answer_cacheable(self, issuer: KnownIssuer, cert_id: CertId) -> OcspAnswer:
        key = (cert_id.hash_algorithm, cert_id.issuer_name_hash, cert_id.issuer_key_hash, cert_id.serial)
        found = self.cache.get(key, time.time())
        if found is not None:
            return OcspAnswer(found[0], self._max_age(found[1]))
        now = utcnow()
        if cert_id.hash_algorithm == "sha1":
            with self.database.reader() as session:
                stored = OcspRepository(session).response(issuer.ca_id, format_serial(cert_id.serial))
            if stored is not None and stored[1] - now > dt.timedelta(minutes=5):
                expires = self._cache_until(now, stored[1])
                self.cache.put(key, stored[0], expires)
                return OcspAnswer(stored[0], self._max_age(expires))
        der, next_update, known = self._sign_and_store(issuer, cert_id)
        # An unknown serial is remembered briefly: cheap to repeat, and it may be issued soon after.
        unknown_for = dt.timedelta(seconds=self.settings.status.ocsp_unknown_cache_seconds)
        expires = self._cache_until(now, next_update) if known else (now + unknown_for).timestamp()
        self.cache.put(key, der, expires)
        return OcspAnswer(der, self._max_age(expires))

    def _cache_until(self, now: dt.datetime, next_update: dt.datetime) -> float:
        """Keep a response until half its refresh period has passed (a newer one is stored by then), and
        never within five minutes of its nextUpdate."""
        refresh = dt.timedelta(hours=self.settings.status.ocsp_refresh_hours) / 2
        return min(now + refresh, next_update - dt.timedelta(minutes=5)).timestamp()

    def _max_age(self, expires: float) -> int:
        """How long an HTTP cache may keep a GET answer: never past its own expiry here, and no longer than
        CRLs may be kept, since both change the moment a certificate is revoked."""
        return max(0, min(self.settings.status.http_max_age_seconds, int(expires - time.time())))

    # ----- signing ------------------------------------------------------------------------------

    def _signer(self, issuer: KnownIssuer) -> OcspSigner:
        """The CA's current responder. Only a CA that has none at all gets one here (a fresh installation
        before its first upkeep round); successors are the upkeep loop's job, never a request's."""
        now = utcnow()
        signer = self._signers.get(issuer.ca_id)
        if signer is not None and signer.not_after > now:
            return signer
        with self._signers_lock:
            signer = self.signer.ocsp_signer(issuer.ca_id, now)
            if signer is None:
                signer = self.signer.issue_responder(issuer.name, actor="mpki-ocsp", lifetime=self._responder_lifetime)
            self._signers[issuer.ca_id] = signer
            return signer

    @property
    def _responder_lifetime(self) -> dt.timedelta:
        return dt.timedelta(days=self.settings.status.ocsp_responder_days)

    def _single(
        self, signer: OcspSigner, cert_id: CertId, state: CertificateState | None, now: dt.datetime
    ) -> SingleStatus:
        status, revoked_at, reason = _status_of(state)
        next_update = min(now + dt.timedelta(hours=self.settings.status.ocsp_next_update_hours), signer.not_after)
        return SingleStatus(cert_id, status, now, next_update, revoked_at, reason)

    def _sign_now(self, issuer: KnownIssuer, cert_ids: list[CertId], nonce: bytes | None) -> bytes:
        signer = self._signer(issuer)
        now = utcnow().replace(microsecond=0)
        with self.database.reader() as session:
            found = RevocationRepository(session).states(issuer.ca_id, [format_serial(c.serial) for c in cert_ids])
        by_serial = {state.serial: state for state in found}
        answers = [self._single(signer, c, by_serial.get(format_serial(c.serial)), now) for c in cert_ids]
        return signer.sign(answers, nonce=nonce, produced_at=now)

    def _sign_and_store(self, issuer: KnownIssuer, cert_id: CertId) -> tuple[bytes, dt.datetime, bool]:
        signer = self._signer(issuer)
        now = utcnow().replace(microsecond=0)
        serial = format_serial(cert_id.serial)
        with self.database.reader() as session:
            state = RevocationRepository(session).state(issuer.ca_id, serial)
        answer = self._single(signer, cert_id, state, now)
        der = signer.sign([answer], nonce=None, produced_at=now)
        if state is not None and cert_id.hash_algorithm == "sha1":
            self._store(issuer.ca_id, signer, [(serial, answer, der)])
        return der, answer.next_update, state is not None

    def _store(self, ca_id: int, signer: OcspSigner, signed: list[tuple[str, SingleStatus, bytes]]) -> None:
        rows = [
            {
                "ca_id": ca_id,
                "serial": serial,
                "status": answer.status,
                "der": der,
                "this_update": answer.this_update,
                "next_update": answer.next_update,
                "responder_id": signer.responder_id,
            }
            for serial, answer, der in signed
        ]
        with self.database.transaction() as session:
            OcspRepository(session).store(ca_id, rows)

    # ----- keeping responses fresh -------------------------------------------------------------

    def reload_issuers(self) -> None:
        """Index the active CAs: a revoked CA's responder no longer speaks for its certificates (its own
        certificate is answered for by its parent), and a pending one has none yet."""
        with self.database.reader() as session:
            cas = [(ca.id, ca.name, ca.certificate_der) for ca in CaRepository(session).all() if ca.status == "active"]
        previous = self._index
        self._index = IssuerIndex([known_issuer(ca_id, name, der) for ca_id, name, der in cas])
        self._index_ca_ids = frozenset(ca_id for ca_id, _, _ in cas)
        for ca_id, issuer in previous.by_id.items():
            if ca_id not in self._index_ca_ids:
                self.cache.drop_issuer(issuer)

    def warm(self) -> int:
        """Load stored responses into this process's cache (up to its capacity), so that the first request
        for each certificate is already a lookup in memory."""
        now = utcnow()
        valid_after = now + dt.timedelta(minutes=5)
        loaded = 0
        after_id = 0
        while loaded < self.cache.capacity:
            with self.database.reader() as session:
                rows = OcspRepository(session).fresh_responses(
                    valid_after=valid_after, after_id=after_id, limit=min(10_000, self.cache.capacity - loaded)
                )
            if not rows:
                break
            for _, ca_id, serial, der, next_update in rows:
                issuer = self._index.by_id.get(ca_id)
                if issuer is not None:
                    key = ("sha1", issuer.name_hashes["sha1"], issuer.key_hashes["sha1"], int(serial, 16))
                    self.cache.put(key, der, self._cache_until(now, next_update))
                    loaded += 1
            after_id = rows[-1][0]
        return loaded

    def presign(self, ca_name: str | None = None, progress: Progress | None = None) -> int:
        """Sign every response that is missing, due for refresh, or signed by a replaced responder."""
        self.reload_issuers()
        signed = 0
        for issuer in list(self._index.by_id.values()):
            if ca_name is not None and issuer.name != ca_name:
                continue
            signed += self._presign_ca(issuer, progress)
        return signed

    def _presign_ca(self, issuer: KnownIssuer, progress: Progress | None) -> int:
        with self.database.reader() as session:
            ca = CaRepository(session).by_id(issuer.ca_id)
        if ca.status == "revoked" or ca.not_after <= utcnow():
            return 0
        with self._signers_lock:
            # Another node may have rotated the responder: sign with the current one, not a remembered
            # predecessor (else two nodes re-sign each other's responses every round).
            self._signers.pop(issuer.ca_id, None)
        signer = self._signer(issuer)
        refresh_before = utcnow() - dt.timedelta(hours=self.settings.status.ocsp_refresh_hours)
        total = 0
        after_id = 0
        while True:
            with self.database.reader() as session:
                repository = OcspRepository(session)
                batch = repository.stale_certificates(
                    issuer.ca_id,
                    signed_before=refresh_before,
                    responder_id=signer.responder_id,
                    after_id=after_id,
                    limit=PRESIGN_CHUNK,
                )
                states = [state for _, state in batch]
                if not batch:
                    states = repository.stale_children(
                        issuer.ca_id, signed_before=refresh_before, responder_id=signer.responder_id
                    )
            if not states:
                return total
            self._sign_states(issuer, signer, states)
            total += len(states)
            if progress:
                progress(len(states))
            if not batch:
                return total
            after_id = batch[-1][0]

    def _sign_states(self, issuer: KnownIssuer, signer: OcspSigner, states: list[CertificateState]) -> None:
        now = utcnow().replace(microsecond=0)
        answers = []
        for state in states:
            serial = int(state.serial, 16)
            cert_id = CertId("sha1", issuer.name_hashes["sha1"], issuer.key_hashes["sha1"], serial)
            answers.append(self._single(signer, cert_id, state, now))
        responses = signer.sign_each(answers, produced_at=now)
        signed = [(state.serial, answer, der) for state, answer, der in zip(states, answers, responses, strict=True)]
        self._store(issuer.ca_id, signer, signed)
        for state in states:
            self.cache.drop(issuer, int(state.serial, 16))

    def refresh(self, ca_id: int, serials: list[str]) -> None:
        """Right after a status change: forget cached answers and sign new ones for these serials."""
        issuer = self._index.by_id.get(ca_id)
        if issuer is None:
            self.reload_issuers()
            issuer = self._index.by_id.get(ca_id)
            if issuer is None:
                return
        for serial in serials:
            self.cache.drop(issuer, int(serial, 16))
        try:
            signer = self._signer(issuer)
            with self.database.reader() as session:
                found = RevocationRepository(session).states(ca_id, serials)
            for start in range(0, len(found), PRESIGN_CHUNK):
                self._sign_states(issuer, signer, found[start : start + PRESIGN_CHUNK])
        except MpkiError as error:
            log.warning("OCSP responses for %s not re-signed yet (%s); they are signed on demand", issuer.name, error)
        except Exception:  # the status change is committed; upkeep and on-demand signing catch up
            log.exception("OCSP responses for %s not re-signed yet; they are signed on demand", issuer.name)

    def poll_changes(self) -> int:
        """Drop cached answers whose certificate changed status in another process; returns how many."""
        # Overlap: a revocation's time is stamped before its transaction commits.
        since = self._polled_at - dt.timedelta(seconds=self.settings.status.change_overlap_seconds)
        self._polled_at = utcnow()
        with self.database.reader() as session:
            active = frozenset(ca.id for ca in CaRepository(session).all() if ca.status == "active")
            changed = RevocationRepository(session).revoked_since(sorted(active | self._index_ca_ids), since)
        if active != self._index_ca_ids:
            self.reload_issuers()
        for ca_id, serial in changed:
            issuer = self._index.by_id.get(ca_id)
            if issuer is not None:
                self.cache.drop(issuer, int(serial, 16))
        return len(changed)

    def rotate_responders(self, *, actor: str) -> list[str]:
        """Issue a successor to every responder certificate that is missing or near its end."""
        now = utcnow()
        renew = dt.timedelta(days=self.settings.status.ocsp_responder_renew_days)
        rotated = []
        with self.database.reader() as session:
            cas = [ca for ca in CaRepository(session).all() if ca.status == "active" and ca.not_after > now]
        for ca in cas:
            current = self.signer.ocsp_signer(ca.id, now)
            # Near the CA's own end a successor could not outlive the current responder: keep it.
            if current is None or (current.not_after - now < renew and ca.not_after > current.not_after):
                successor = self.signer.issue_responder(ca.name, actor=actor, lifetime=self._responder_lifetime)
                with self._signers_lock:
                    self._signers[ca.id] = successor
                rotated.append(ca.name)
        return rotated
