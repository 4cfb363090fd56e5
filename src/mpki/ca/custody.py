"""Key custody as the CA runs it: quorum activation, deactivation, backup and restore, each audited.

The mechanisms live in `keys`; this room adds what `keys` may not know about: the audit chain and
the CA certificates a restored key must still match.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpki.audit import AuditRecord, append
from mpki.config import Settings
from mpki.domain import KeyStoreError, NotFound
from mpki.keys import KeyStore
from mpki.keys.activation import ActivationStore
from mpki.keys.quorum import CustodianShare, QuorumError, combine
from mpki.keys.registry import CustodyRegistry
from mpki.keys.secrets import backup_key, so_pin, user_pin
from mpki.store import CaRepository, Database

PROOF_MESSAGE = b"mpki restored-key proof"


@dataclass(frozen=True, slots=True)
class GroupStatus:
    group: str
    threshold: int
    shares: int
    ceremony: str
    active: bool


@dataclass(frozen=True, slots=True)
class KeyStatus:
    ca: str
    key_id: str
    backend: str
    group: str | None
    active: bool


class KeyCustody:
    """Activation and backup of the CA keys of one installation."""

    def __init__(self, settings: Settings, database: Database, keystore: KeyStore) -> None:
        self.settings = settings
        self.database = database
        self.keystore = keystore
        self.registry = CustodyRegistry(settings.keys_dir)
        self.activation = ActivationStore(settings.run_dir)

    def _audit(self, *records: AuditRecord) -> None:
        with self.database.transaction() as session:
            append(session, list(records))

    def activate(self, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None, *, actor: str) -> str:
        """Rebuild a group's secret from M shares and keep it active; every refusal is audited."""
        custodians = sorted({share.custodian for share in shares})
        try:
            group, secret = combine(shares, passphrases)
            if not self.registry.recognises(group, secret):
                raise QuorumError(f"the shares rebuild a secret that does not belong to group {group!r} here")
        except (QuorumError, NotFound) as error:
            self.activation_refused(error, custodians, len(shares), actor=actor)
            raise
        self.activation.activate(group, secret)
        self._audit(
            AuditRecord(
                action="keys.activated",
                actor=actor,
                details={"group": group, "custodians": custodians, "shares_presented": len(shares)},
            )
        )
        return group

    def activation_refused(self, error: Exception, custodians: Sequence[str], presented: int, *, actor: str) -> None:
        """Audit a refused activation, also one refused before combining (an unreadable file, a mistyped share)."""
        self._audit(
            AuditRecord(
                action="keys.activation_failed",
                actor=actor,
                details={"reason": str(error), "custodians": list(custodians), "shares_presented": presented},
            )
        )

    def deactivate(self, *, actor: str, group: str | None = None) -> list[str]:
        removed = self.activation.deactivate(group)
        self._audit(AuditRecord(action="keys.deactivated", actor=actor, details={"groups": removed}))
        return removed

    def status(self) -> tuple[list[GroupStatus], list[KeyStatus]]:
        active = set(self.activation.active_groups())
        groups = [
            GroupStatus(g.group, g.threshold, g.shares, g.ceremony, g.group in active) for g in self.registry.groups()
        ]
        keys = []
        with self.database.reader() as session:
            for ca in CaRepository(session).all():
                group = self._group_of(ca.key_id, ca.key_backend)
                keys.append(KeyStatus(ca.name, ca.key_id, ca.key_backend, group, group is None or group in active))
        return groups, keys

    def _group_of(self, key_id: str, backend: str) -> str | None:
        if backend == "pkcs11":
            return self.registry.group_of_token(key_id.split("/", 1)[0])
        groups = self.registry.groups()
        return groups[0].group if groups else None

    def _backup_key(self, group: str | None) -> bytes:
        if group is None:
            raise KeyStoreError("backups need a quorum: this keystore is unlocked by a passphrase")
        secret = self.activation.secret(group)
        if secret is None:
            raise KeyStoreError(f"quorum group {group!r} is not active: present its custodians' shares first")
        return backup_key(secret)

    def backup(self, ca_name: str, out: Path, *, actor: str) -> str:
        """Write the CA's key, wrapped under the quorum's backup key, to `out`; returns the blob's SHA-256."""
        with self.database.reader() as session:
            ca = CaRepository(session).by_name(ca_name)
            key_id, backend = ca.key_id, ca.key_backend
        if out.exists():
            raise KeyStoreError(f"{out} exists; refusing to overwrite a backup")
        blob = self.keystore.export_backup(key_id, self._backup_key(self._group_of(key_id, backend)))
        out.write_bytes(blob)
        digest = hashlib.sha256(blob).hexdigest()
        self._audit(
            AuditRecord(
                action="key.backed_up",
                actor=actor,
                ca=ca_name,
                details={"key_id": key_id, "backup_sha256": digest, "file": out.name},
            )
        )
        return digest

    def add_token(self, label: str, group: str, *, actor: str) -> None:
        """Initialise another HSM token (a backup or replacement) under an active quorum group."""
        from mpki.keys.pkcs11_tokens import initialise_token

        if self.settings.keystore_backend != "pkcs11":
            raise KeyStoreError("tokens belong to the pkcs11 backend; this installation uses software keys")
        secret = self.activation.secret(group)
        if secret is None:
            raise KeyStoreError(f"quorum group {group!r} is not active: present its custodians' shares first")
        initialise_token(
            self.settings.pkcs11_module, label, so_pin(secret, label), user_pin(secret, label), backup_key(secret)
        )
        self.registry.register_token(label, group)
        self._audit(AuditRecord(action="token.initialised", actor=actor, details={"token": label, "group": group}))

    def restore(self, ca_name: str, blob_path: Path, *, actor: str, token: str | None = None, use: bool = False) -> str:
        """Unwrap a backup into this keystore and prove it signs under the CA's certificate.

        With `use`, the CA signs with the restored key from now on (the primary HSM was lost).
        """
        with self.database.reader() as session:
            ca = CaRepository(session).by_name(ca_name)
            certificate = x509.load_der_x509_certificate(ca.certificate_der)
            backend = ca.key_backend
        blob = blob_path.read_bytes()
        spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        held = _backup_public_key(blob)
        if held is not None and held != spki:
            # Checked before the import: a key the proof would refuse must not be left in the keystore.
            raise KeyStoreError(f"{blob_path} holds another key than CA {ca_name}'s (not its certificate's public key)")
        group_key_id = f"{token}/" if token else ""
        info = self.keystore.import_backup(blob, self._backup_key(self._group_of(group_key_id, backend)), token)
        prove_signs_for(self.keystore, info.key_id, certificate)
        with self.database.transaction() as session:
            ca_row = CaRepository(session).by_name(ca_name)
            previous = ca_row.key_id
            if use:
                ca_row.key_id = info.key_id
            append(
                session,
                [
                    AuditRecord(
                        action="key.restored",
                        actor=actor,
                        ca=ca_name,
                        details={
                            "key_id": info.key_id,
                            "token": info.token,
                            "proof": "signature verified under the CA certificate",
                            "now_signing_with": info.key_id if use else previous,
                        },
                    )
                ],
            )
        return info.key_id


def _backup_public_key(blob: bytes) -> bytes | None:
    """The SubjectPublicKeyInfo a backup blob names (both backends write it as base64 `public_key`)."""
    try:
        data = json.loads(blob)
        return base64.b64decode(data["public_key"], validate=True)
    except (ValueError, KeyError, TypeError):
        return None  # not readable here: the keystore's import refuses it in its own words


def prove_signs_for(keystore: KeyStore, key_id: str, certificate: x509.Certificate) -> None:
    """Sign a fixed message with the key and verify it with the certificate's public key."""
    try:
        _verify_proof(keystore, key_id, certificate)
    except InvalidSignature:
        raise KeyStoreError(f"key {key_id} does not make signatures that verify under the CA certificate") from None


def _verify_proof(keystore: KeyStore, key_id: str, certificate: x509.Certificate) -> None:
    key = keystore.signing_key(key_id)
    public = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(key.sign(PROOF_MESSAGE, ec.ECDSA(hashes.SHA256())), PROOF_MESSAGE, ec.ECDSA(hashes.SHA256()))
        return
    if isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
        signature = key.sign(PROOF_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        public.verify(signature, PROOF_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        return
    raise KeyStoreError("the restored key is not of the certificate's key type")
