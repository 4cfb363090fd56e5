"""Key custody as the CA runs it: quorum activation, deactivation, backup, restore, clone and new
tokens, each audited, refusals included.

The mechanisms live in `keys`; this room adds what `keys` may not know about: the audit chain and
the CA certificates a restored key must still match. Backup, restore and clone take fresh shares of
the backup group, and a new token fresh shares of the token-admin group: those secrets are rebuilt
for the one operation and never kept, and the activation secret plays no part in them.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mpki.audit import AuditRecord, append
from mpki.config import Environment, Settings
from mpki.domain import KeyStoreError, MpkiError, NotFound, utcnow
from mpki.keys.activation import ActivationStore
from mpki.keys.backups import read_header
from mpki.keys.purposes import CA_PURPOSES, OCSP_RESPONDER_PURPOSES, KeyPurposes, Purpose
from mpki.keys.quorum import CustodianShare, QuorumError, combine
from mpki.keys.registry import CustodyRegistry, GroupRole
from mpki.keys.secrets import backup_key, so_pin, user_pin
from mpki.keys.softhsm_store import softhsm_conf, token_root
from mpki.keys.software import SoftwareKeyStore
from mpki.signer.signing_keys import SigningKeys
from mpki.store import CaRepository, Database, OcspRepository

# A signed record (JSON), the only purpose a proof may borrow from a CA key.
PROOF_MESSAGE = b'{"proof":"mpki restored key signs under its CA certificate"}'


@dataclass(frozen=True, slots=True)
class GroupStatus:
    group: str
    threshold: int
    shares: int
    ceremony: str
    active: bool
    role: str = "activation"


class Refusal(enum.StrEnum):
    """The audit action of a refused custody operation (as `keys.activation_failed` is activation's)."""

    BACKUP = "key.backup_failed"
    RESTORE = "key.restore_failed"
    CLONE = "token.clone_failed"
    INIT_TOKEN = "token.initialisation_failed"


@dataclass(frozen=True, slots=True)
class BackupWritten:
    """A backup file: the CA's key, and beside it on a token every other key of that token."""

    path: Path
    sha256: str
    group: str
    token: str | None
    key_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Restored:
    """A restored key and what became of its proof (None: proven; else why it was not proven here)."""

    key_id: str
    token: str | None
    where: Path
    not_proven: str | None


@dataclass(frozen=True, slots=True)
class Cloned:
    token: str
    serial: str
    where: Path
    key_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeyStatus:
    ca: str
    key_id: str
    backend: str
    group: str | None
    active: bool


class KeyCustody:
    """Activation and backup of the CA keys of one installation."""

    def __init__(self, settings: Settings, database: Database, keystore: SigningKeys) -> None:
        self.settings = settings
        self.database = database
        self.keystore = keystore
        self.registry = CustodyRegistry(settings.keys_dir)
        self.activation = ActivationStore(settings.run_dir)

    def _audit(self, *records: AuditRecord) -> None:
        with self.database.transaction() as session:
            append(session, list(records))

    def activate(self, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None, *, actor: str) -> str:
        """Present M shares to the signer, which rebuilds the group's secret and holds it; every refusal is audited.

        The secret is rebuilt inside the signer: this process only passes the shares on."""
        custodians = sorted({share.custodian for share in shares})
        try:
            result = self.keystore.signer.activate(shares, passphrases)
        except (QuorumError, NotFound) as error:
            self.activation_refused(error, custodians, len(shares), actor=actor)
            raise
        self._audit(
            AuditRecord(
                action="keys.activated",
                actor=actor,
                details={
                    "group": result.group,
                    "custodians": custodians,
                    "shares_presented": len(shares),
                    "signer": "process" if self.keystore.remote else "in-process (development)",
                },
            )
        )
        return result.group

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
        removed = self.keystore.signer.deactivate(group)
        self._audit(AuditRecord(action="keys.deactivated", actor=actor, details={"groups": removed}))
        return removed

    def status(self) -> tuple[list[GroupStatus], list[KeyStatus]]:
        active = set(self.keystore.signer.active_groups())
        groups = [
            GroupStatus(g.group, g.threshold, g.shares, g.ceremony, g.group in active, g.role.value)
            for g in self.registry.groups()
        ]
        keys = []
        with self.database.reader() as session:
            for ca in CaRepository(session).all():
                group = self._group_of(ca.key_id, ca.key_backend)
                keys.append(KeyStatus(ca.name, ca.key_id, ca.key_backend, group, group is None or group in active))
        return groups, keys

    def record_missing_purposes(self, *, actor: str) -> dict[str, list[str]]:
        """For an installation made before keys carried purposes: each CA key may sign what a CA key signs,
        each current OCSP responder key OCSP responses only. Keys that have purposes keep them."""
        purposes = KeyPurposes(self.settings.keys_dir)
        now = utcnow()
        recorded: dict[str, list[str]] = {}
        with self.database.reader() as session:
            for ca in CaRepository(session).all():
                if not purposes.of(ca.key_id):
                    recorded[ca.key_id] = sorted(CA_PURPOSES)
                responder = OcspRepository(session).current_responder(ca.id, now)
                if responder is not None and not purposes.of(responder.key_id):
                    recorded[responder.key_id] = sorted(OCSP_RESPONDER_PURPOSES)
        for key_id, allowed in recorded.items():
            purposes.record(key_id, [Purpose(p) for p in allowed])
        self._audit(AuditRecord(action="keys.purposes_recorded", actor=actor, details={"keys": recorded}))
        return recorded

    def _group_of(self, key_id: str, backend: str) -> str | None:
        """The activation group whose secret unlocks a key (None: a passphrase keystore)."""
        if backend == "pkcs11":
            return self.registry.group_of_token(key_id.split("/", 1)[0])
        if not SoftwareKeyStore.exists(self.settings.keys_dir):
            return None
        return SoftwareKeyStore.quorum_group(self.settings.keys_dir)

    # --- backup, restore, clone, new tokens: fresh shares of their own group ------------------------------

    def custody_refused(
        self,
        refusal: Refusal,
        error: Exception,
        custodians: Sequence[str],
        presented: int,
        *,
        actor: str,
        **subject: str,
    ) -> None:
        """Audit a refused backup, restore, clone or token initialisation (also one refused before its
        shares could be read), naming custodians but never a word of their shares."""
        details = {"reason": str(error), "custodians": list(custodians), "shares_presented": presented, **subject}
        self._audit(AuditRecord(action=refusal.value, actor=actor, details=details))

    @contextlib.contextmanager
    def _refusals(
        self, refusal: Refusal, shares: Sequence[CustodianShare], *, actor: str, **subject: str
    ) -> Iterator[None]:
        try:
            yield
        except MpkiError as error:
            custodians = sorted({share.custodian for share in shares})
            self.custody_refused(refusal, error, custodians, len(shares), actor=actor, **subject)
            raise

    def _activation_secret(
        self, group: str, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None
    ) -> bytes:
        """The activation group's secret, from its shares presented now (in production the only way:
        the signer never lets a secret out), or from a development installation's run directory."""
        if shares:
            presented, secret = combine(shares, passphrases)
            if presented != group or not self.registry.recognises(group, secret, GroupRole.ACTIVATION):
                raise QuorumError(f"the activation shares rebuild a secret that is not group {group!r}'s")
            return secret
        kept = self.activation.secret(group) if self.settings.environment is not Environment.PRODUCTION else None
        if kept is None:
            raise KeyStoreError(
                f"the new token's user PIN comes from quorum group {group!r}: present its shares too"
                " (--activation-share)"
            )
        return kept

    def _fresh_secret(
        self, role: GroupRole, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None
    ) -> tuple[str, bytes]:
        """Rebuild the secret of the installation's group of `role` from shares presented now."""
        if not shares:
            group = self.registry.only_group(role).group
            raise QuorumError(f"{role.task} needs fresh shares of quorum group {group!r}; none were presented")
        group, secret = combine(shares, passphrases)
        if not self.registry.recognises(group, secret, role):
            raise QuorumError(f"the shares rebuild a secret that does not belong to group {group!r} here")
        return group, secret

    def backup(
        self,
        ca_name: str,
        out: Path,
        shares: Sequence[CustodianShare],
        passphrases: Mapping[str, str] | None,
        *,
        actor: str,
    ) -> BackupWritten:
        """Seal the protected form of the CA's key under the backup group's key and write it to `out`.

        On a token the backup is the whole token (`keys.token_backups`); in the software keystore, the
        key's sealed file (`keys.software_backups`). Needs the backup group's shares, not the activation.
        """
        with self._refusals(Refusal.BACKUP, shares, actor=actor, ca=ca_name):
            with self.database.reader() as session:
                ca = CaRepository(session).by_name(ca_name)
                key_id, backend = ca.key_id, ca.key_backend
            if out.exists():
                raise KeyStoreError(f"{out} exists; refusing to overwrite a backup")
            group, secret = self._fresh_secret(GroupRole.BACKUP, shares, passphrases)
            token: str | None = None
            if backend == "pkcs11":
                from mpki.keys.token_backups import backup_token

                token = key_id.split("/", 1)[0]
                conf = softhsm_conf()
                blob = backup_token(self.settings.pkcs11_module, token, backup_key(secret), group=group, conf=conf)
            else:
                from mpki.keys.software_backups import backup_software_key

                blob = backup_software_key(self.settings.keys_dir, key_id, backup_key(secret), group=group)
            _write_exclusive(out, blob)
        written = BackupWritten(
            out,
            hashlib.sha256(blob).hexdigest(),
            group,
            token,
            tuple(key.key_id for key in read_header(blob).manifest.keys),
        )
        custodians = sorted({share.custodian for share in shares})
        details = {"key_id": key_id, "token": token, "keys": list(written.key_ids), "backup_sha256": written.sha256}
        details |= {"file": out.name, "group": group, "custodians": custodians}
        self._audit(AuditRecord(action="key.backed_up", actor=actor, ca=ca_name, details=details))
        return written

    def restore(
        self,
        ca_name: str,
        blob_path: Path,
        shares: Sequence[CustodianShare],
        passphrases: Mapping[str, str] | None,
        *,
        actor: str,
        target_conf: Path | None = None,
    ) -> Restored:
        """Lay a backup of the CA's key back (a token into `target_conf`'s token directory, by default
        this HSM's; a software key into the keystore) and, where this process can, prove that the key
        signs under the CA's certificate.

        The proof needs the activated key: it is made through the installation's signer when the
        restore lands where the signer looks and the activation group is active; otherwise the result
        says why it was not, and the activation quorum proves it there (`not_proven`).
        """
        with self._refusals(Refusal.RESTORE, shares, actor=actor, ca=ca_name):
            with self.database.reader() as session:
                ca = CaRepository(session).by_name(ca_name)
                certificate = x509.load_der_x509_certificate(ca.certificate_der)
                key_id, backend = ca.key_id, ca.key_backend
            blob = blob_path.read_bytes()
            spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            held = read_header(blob).manifest.keys
            if not any(key.public_key_der == spki for key in held):
                raise KeyStoreError(
                    f"{blob_path} holds another key than CA {ca_name}'s (not its certificate's public key)"
                )
            group, secret = self._fresh_secret(GroupRole.BACKUP, shares, passphrases)
            if backend == "pkcs11":
                restored = self._restore_token(blob, backup_key(secret), key_id, target_conf)
            else:
                restored = self._restore_software(blob, backup_key(secret), key_id)
            if restored.not_proven is None:
                prove_signs_for(self.keystore, key_id, certificate)
        custodians = sorted({share.custodian for share in shares})
        proof = restored.not_proven or "signature verified under the CA certificate"
        details: dict[str, object] = {"key_id": key_id, "token": restored.token, "restored_to": str(restored.where)}
        details |= {"proof": proof, "group": group, "custodians": custodians}
        self._audit(AuditRecord(action="key.restored", actor=actor, ca=ca_name, details=details))
        return restored

    def _restore_token(self, blob: bytes, key: bytes, key_id: str, target_conf: Path | None) -> Restored:
        from mpki.keys.pkcs11_tokens import reset_module
        from mpki.keys.token_backups import restore_token

        own = softhsm_conf()
        target = target_conf or own
        token = restore_token(blob, key, target)
        if token_root(target).resolve() != token_root(own).resolve():
            why = f"restored into another HSM ({target}): activate the keys there to prove them"
            return Restored(key_id, token.label, token.directory, why)
        reset_module(self.settings.pkcs11_module)  # this process's module must see the token
        return Restored(key_id, token.label, token.directory, self._unprovable(key_id))

    def _restore_software(self, blob: bytes, key: bytes, key_id: str) -> Restored:
        from mpki.keys.software_backups import restore_software_key

        info, _ = restore_software_key(blob, key, self.settings.keys_dir)
        if info.key_id != key_id:
            raise KeyStoreError(f"the backup holds key {info.key_id}, not the CA's key {key_id}")
        return Restored(key_id, None, self.settings.keys_dir, self._unprovable(key_id))

    def _unprovable(self, key_id: str) -> str | None:
        """Why the restored key cannot be made to sign here, or None if it can."""
        if not self.keystore.is_active():
            group = self._group_of(key_id, self.settings.keystore_backend)
            return f"not proven: the keys are not active here; activate group {group} to prove them"
        return None

    def clone(
        self,
        token: str,
        target_conf: Path,
        shares: Sequence[CustodianShare],
        passphrases: Mapping[str, str] | None,
        *,
        actor: str,
    ) -> Cloned:
        """Copy a whole token into the token directory of another HSM (`target_conf`) in one step: the
        only way the apex contingency key reaches a backup token. Needs the backup group's shares."""
        with self._refusals(Refusal.CLONE, shares, actor=actor, token=token):
            if self.settings.keystore_backend != "pkcs11":
                raise KeyStoreError("tokens belong to the pkcs11 backend; this installation uses software keys")
            self.registry.group_of_token(token)
            group, secret = self._fresh_secret(GroupRole.BACKUP, shares, passphrases)
            from mpki.keys.token_backups import clone_token

            module = self.settings.pkcs11_module
            restored = clone_token(
                module, token, backup_key(secret), group=group, conf=softhsm_conf(), target_conf=target_conf
            )
        cloned = Cloned(restored.label, restored.serial, restored.directory, tuple(k.key_id for k in restored.keys))
        custodians = sorted({share.custodian for share in shares})
        details = {
            "token": token,
            "serial": cloned.serial,
            "cloned_to": str(cloned.where),
            "keys": list(cloned.key_ids),
        }
        details |= {"group": group, "custodians": custodians}
        self._audit(AuditRecord(action="token.cloned", actor=actor, details=details))
        return cloned

    def add_token(
        self,
        label: str,
        group: str,
        shares: Sequence[CustodianShare],
        passphrases: Mapping[str, str] | None,
        *,
        actor: str,
        activation_shares: Sequence[CustodianShare] = (),
    ) -> str:
        """Initialise another HSM token: its SO PIN from the token-admin group's shares presented now, its
        user PIN from activation group `group`: its shares presented now too, or (development only) its
        activation kept in the run directory. Returns the token-admin group."""
        from mpki.keys.pkcs11_tokens import initialise_token

        with self._refusals(Refusal.INIT_TOKEN, shares, actor=actor, token=label):
            if self.settings.keystore_backend != "pkcs11":
                raise KeyStoreError("tokens belong to the pkcs11 backend; this installation uses software keys")
            self.registry.require_role(group, GroupRole.ACTIVATION)
            admin_group, admin_secret = self._fresh_secret(GroupRole.TOKEN_ADMIN, shares, passphrases)
            secret = self._activation_secret(group, activation_shares, passphrases)
            initialise_token(self.settings.pkcs11_module, label, so_pin(admin_secret, label), user_pin(secret, label))
            self.registry.register_token(label, group, token_admin=admin_group)
        custodians = sorted({share.custodian for share in shares})
        details = {"token": label, "group": group, "token_admin": admin_group, "custodians": custodians}
        self._audit(AuditRecord(action="token.initialised", actor=actor, details=details))
        return admin_group


def _write_exclusive(path: Path, data: bytes) -> None:
    """Write a new file, owner-only; never replaces one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyStoreError(f"{path} exists; refusing to overwrite a backup") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def prove_signs_for(keystore: SigningKeys, key_id: str, certificate: x509.Certificate) -> None:
    """Sign a fixed message with the key and verify it with the certificate's public key."""
    try:
        _verify_proof(keystore, key_id, certificate)
    except InvalidSignature:
        raise KeyStoreError(f"key {key_id} does not make signatures that verify under the CA certificate") from None


def _verify_proof(keystore: SigningKeys, key_id: str, certificate: x509.Certificate) -> None:
    key = keystore.signing_key(key_id, Purpose.RECORD)
    public = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(key.sign(PROOF_MESSAGE, ec.ECDSA(hashes.SHA256())), PROOF_MESSAGE, ec.ECDSA(hashes.SHA256()))
        return
    if isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
        signature = key.sign(PROOF_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        public.verify(signature, PROOF_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        return
    raise KeyStoreError("the restored key is not of the certificate's key type")
