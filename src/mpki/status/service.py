"""The status room's front door: revocation, CRL publication and OCSP, wired to one CA installation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mpki.ca import CertificationAuthority
from mpki.ca.status_signer import StatusSigner
from mpki.domain import KeyStoreError
from mpki.status.crl import CrlPublisher, PublishedCrl
from mpki.status.ocsp import OcspService
from mpki.status.revocation import Revocations

log = logging.getLogger("mpki.status")


@dataclass(frozen=True)
class MaintenanceReport:
    responders_issued: tuple[str, ...]
    crls_published: tuple[PublishedCrl, ...]
    responses_signed: int

    def as_json(self) -> dict[str, object]:
        return {
            "responders_issued": list(self.responders_issued),
            "crls_published": [crl.as_json() for crl in self.crls_published],
            "responses_signed": self.responses_signed,
        }


class StatusService:
    def __init__(self, authority: CertificationAuthority) -> None:
        self.authority = authority
        self.settings = authority.settings
        self.database = authority.database
        self.signer = StatusSigner(authority)
        self.crls = CrlPublisher(self.settings, self.database, self.signer)
        self.ocsp = OcspService(self.settings, self.database, self.signer)
        self.revocations = Revocations(self.database, self.crls, self.ocsp)

    def maintain(
        self, *, actor: str = "mpki-status", progress: Callable[[int], None] | None = None
    ) -> MaintenanceReport:
        """One round of upkeep: rotate responder certificates, publish due CRLs, sign due OCSP responses."""
        rotated = self.ocsp.rotate_responders(actor=actor)
        published = tuple(self.crls.publish(name, kind, actor=actor) for name, kind in self.crls.due())
        signed = self.ocsp.presign(progress=progress)
        return MaintenanceReport(tuple(rotated), published, signed)


class StatusMaintainer:
    """A thread in `mpki serve`: upkeep every `maintenance_seconds`, cache re-checks every `cache_poll_seconds`.
    Several nodes may run one each: cRLNumbers are reserved in the database, and a duplicate CRL is harmless."""

    def __init__(self, service: StatusService) -> None:
        self.service = service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mpki-status", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        status = self.service.settings.status
        polls_per_round = max(1, status.maintenance_seconds // status.cache_poll_seconds)
        try:
            self.service.ocsp.warm()
        except Exception:  # a cold cache still answers, from the database
            log.exception("OCSP cache warm-up failed")
        while not self._stop.is_set():
            try:
                self.service.maintain()
            except KeyStoreError as error:
                log.warning("status upkeep waits for the keystore: %s", error)
            except Exception:  # the loop must outlive one failure; it is logged and retried next round
                log.exception("status upkeep failed")
            for _ in range(polls_per_round):
                if self._stop.wait(status.cache_poll_seconds):
                    return
                try:
                    self.service.ocsp.poll_changes()
                except Exception:  # as above: logged, retried at the next poll
                    log.exception("OCSP cache poll failed")
