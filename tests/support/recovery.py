"""The recovery room's tests share one installation shape: the development hierarchy made by the real
ceremony path (`run_dev_ceremony`, so the apex carries its contingency key and the shares and unwrap key
sit in MPKI_HOME), an organisation, and helpers that issue certificates and take a snapshot of
everything a refused proposal or run must leave as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from mpki.asn1.tamp import TrustAnchor
from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.ceremony import run_dev_ceremony
from mpki.ceremony.dev import DEV_UNWRAP_KEY
from mpki.config import load_settings
from mpki.keys.contingency import GROUP as CONTINGENCY_GROUP
from mpki.keys.contingency import ContingencyVault
from mpki.keys.interface import PublicKey
from mpki.keys.quorum import read_share
from mpki.ra import OPERATOR
from mpki.ra.directory import Directory
from mpki.recovery import RecoveryContext
from mpki.status import StatusService
from mpki.store import AuditRepository, CertificateRepository
from mpki.store.schema import DeviceFlag, RecoveryItem, RecoveryRecord
from mpki.tams import TrustAnchorStore
from tests.csr_factory import device_csr, org_csr, random_eui64

PROPOSER = "alice"
APPROVER = "bob"
ORG_NAME = "Recovery Energy"
ORG_EUI = "90B3D51F30020000"


@dataclass
class Installation:
    home: Path
    env: dict[str, str]
    context: RecoveryContext
    org_id: int

    @property
    def authority(self) -> CertificationAuthority:
        return self.context.authority

    def vault(self) -> ContingencyVault:
        settings = self.context.settings
        return ContingencyVault(settings.keys_dir, settings.keystore_backend, settings.pkcs11_module)

    @property
    def unwrap_key(self) -> Path:
        return self.home / DEV_UNWRAP_KEY

    def shares(self, group: str = CONTINGENCY_GROUP) -> list[Path]:
        return sorted(p for p in (self.home / "dev-shares").iterdir() if read_share(p).group == group)

    def issue_org(self, count: int, ca_usage: str = "digitalSignature") -> list[str]:
        """`count` smki-org certificates of the organisation (under smki-org-ca); their serials."""
        eui = bytes.fromhex(ORG_EUI)
        orders = [
            IssuanceOrder("smki-org", org_csr(eui, usage=ca_usage), approved_by="setup", organisation_id=self.org_id)
            for _ in range(count)
        ]
        return self._issue(orders)

    def issue_devices(self, count: int, usages: tuple[str, ...] = ("digitalSignature",)) -> dict[str, list[str]]:
        """New devices of the organisation, one certificate per usage each: EUI-64 hex -> serials."""
        made: dict[str, list[str]] = {}
        for _ in range(count):
            eui = random_eui64()
            orders = [
                IssuanceOrder("smki-device", device_csr(eui, usage), approved_by="setup", organisation_id=self.org_id)
                for usage in usages
            ]
            made[eui.hex().upper()] = self._issue(orders)
        return made

    def _issue(self, orders: list[IssuanceOrder]) -> list[str]:
        results = self.authority.issue_many(orders, actor="setup")
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        return [r.certificate.serial for r in results if r.certificate is not None]

    def endpoint(self, name: str = "endpoint") -> TrustAnchorStore:
        """A meter's trust-anchor store, as the drill makes it: the apex, and the TLS root as an identity anchor."""
        cas = {view.name: view for view in self.authority.list_cas()}
        return TrustAnchorStore.initialise(
            self.home / name / "store.json",
            ec.generate_private_key(ec.SECP256R1()),
            TrustAnchor.from_certificate(cas["smki-root"].certificate_der),
            management=[(TrustAnchor.from_certificate(cas["tls-root"].certificate_der), ())],
        )

    def events(self, action: str) -> list[dict[str, Any]]:
        with self.authority.database.reader() as session:
            found = AuditRepository(session).by_action(action)
            return [{"ca": e.ca, "serial": e.serial, "actor": e.actor, **json.loads(e.details)} for e in found]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a refusal must leave as it was: CAs, the audit tip, certificates, recovery rows, the vault."""
        with self.authority.database.reader() as session:
            head = AuditRepository(session).head()
            counts = tuple(
                session.scalar(select(func.count()).select_from(table))
                for table in (RecoveryRecord, RecoveryItem, DeviceFlag)
            )
            certificates = CertificateRepository(session).count()
        vault = self.vault()
        return (
            tuple(self.authority.list_cas()),
            head.seq if head else 0,
            certificates,
            counts,
            vault.record() if vault.exists() else None,
            sorted(str(p.relative_to(self.home)) for p in (self.home / "recovery").rglob("*"))
            if (self.home / "recovery").exists()
            else [],
        )

    def close(self) -> None:
        self.authority.database.dispose()


def install(env: dict[str, str]) -> Iterator[Installation]:
    """The development installation through the ceremony path, with one organisation (a fixture body)."""
    home = Path(env["MPKI_HOME"])
    run_dev_ceremony(env, home)
    settings = load_settings(env)
    authority = open_authority(settings)
    org = Directory(authority.database).create_organisation(OPERATOR, ORG_NAME, [ORG_EUI], ["supplier"])
    installation = Installation(home, env, RecoveryContext(settings, authority, StatusService(authority)), org.id)
    try:
        yield installation
    finally:
        installation.close()


def certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def pem(der: bytes) -> bytes:
    return certificate(der).public_bytes(serialization.Encoding.PEM)


def public_spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki(cert: x509.Certificate) -> bytes:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return public_spki(key)
