"""The signing service: key activation held in memory, and signatures for a named purpose.

This is the only code that opens a keystore backend. It runs inside `mpki signer` (behind a Unix
socket, another OS user in production) and, in development and test installations with no signer
running, inside the calling process as a convenience: there, and only there, an activated secret is
also kept in `MPKI_RUN_DIR/active/` so that the next CLI command finds the keys active. In an
installation marked production it never reads or writes a secret on disk, and it refuses a software
keystore unlocked by a passphrase alone.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from mpki.config import Environment, Settings
from mpki.domain import ConfigError, InvalidRequest, KeyStoreError, NotFound
from mpki.keys import INACTIVE_MESSAGE, KeyAlgorithm, KeyInfo, KeyStore, SoftwareKeyStore
from mpki.keys.activation import ActivationStore
from mpki.keys.contingency import GROUP as CONTINGENCY_GROUP
from mpki.keys.purposes import KeyPurposes, Purpose, shape_matches
from mpki.keys.quorum import CustodianShare, QuorumError, combine
from mpki.keys.registry import CustodyRegistry
from mpki.keys.secrets import user_pin
from mpki.signer.checkpoints import AnchorDirectory, CheckpointNotary, SignedCheckpoint

AUDIT_KEY_LABEL = "mpki-audit"

# Development only: `mpki init --dev` says so loudly, and production refuses it.
DEV_PASSPHRASE = "insecure-development-passphrase"

HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class ActivationResult:
    group: str
    custodians: tuple[str, ...]
    shares_presented: int


@dataclass(frozen=True, slots=True)
class SignerStatus:
    """What the signer says about itself: no secret, only facts an operator may see."""

    environment: str
    backend: str
    active_groups: tuple[str, ...]
    signatures: Mapping[str, int] = field(default_factory=dict)
    pid: int = 0
    remote: bool = False


def kek_passphrase(settings: Settings) -> str:
    if settings.environment is Environment.PRODUCTION:
        raise ConfigError(
            "a software keystore unlocked by a passphrase alone is refused in production: "
            "make the keys in a key ceremony (quorum of custodians) or on an HSM"
        )
    return settings.kek_passphrase or DEV_PASSPHRASE


def create_passphrase_keystore(settings: Settings) -> None:
    """A software keystore unlocked by a passphrase (development and tests only)."""
    if not SoftwareKeyStore.exists(settings.keys_dir):
        SoftwareKeyStore.create(settings.keys_dir, kek_passphrase(settings))


class SigningService:
    """Holds the activated quorum secrets of one installation in memory and signs with its keys."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.production = settings.environment is Environment.PRODUCTION
        self.registry = CustodyRegistry(settings.keys_dir)
        self.purposes = KeyPurposes(settings.keys_dir)
        self._secrets: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._keystore: KeyStore | None = None
        self._counts: Counter[str] = Counter()
        if not self.production:
            # Development convenience: an activation left by an earlier command (never in production).
            files = ActivationStore(settings.run_dir)
            for group in files.active_groups():
                secret = files.secret(group)
                if secret is not None:
                    self._secrets[group] = secret

    # ----- activation ------------------------------------------------------------------------

    def activate(self, shares: Sequence[CustodianShare], passphrases: Mapping[str, str] | None) -> ActivationResult:
        """Rebuild a group's secret from M shares and hold it; the keys it unlocks sign from now on."""
        try:
            group, secret = combine(shares, passphrases)
            if group == CONTINGENCY_GROUP:
                raise QuorumError(
                    "the apex contingency group is never activated: its shares are presented only in an apex recovery"
                )
            if not self.registry.recognises(group, secret):
                raise QuorumError(f"the shares rebuild a secret that does not belong to group {group!r} here")
        except NotFound as error:
            raise QuorumError(str(error)) from None
        with self._lock:
            self._secrets[group] = secret
            if not self.production:
                ActivationStore(self.settings.run_dir).activate(group, secret)
            self._reopen()
        custodians = tuple(sorted({share.custodian for share in shares}))
        return ActivationResult(group, custodians, len(shares))

    def hold(self, group: str, secret: bytes) -> None:
        """Hold a secret a key ceremony has just made, before any share of it was ever presented.

        In production it lives only as long as this service (the ceremony); the custodians then
        activate the signer with their shares."""
        with self._lock:
            self._secrets[group] = secret
            if not self.production:
                ActivationStore(self.settings.run_dir).activate(group, secret)
            self._reopen()

    def deactivate(self, group: str | None = None) -> list[str]:
        """Forget the secret of `group`, or of every group; returns the groups that were active."""
        with self._lock:
            names = [group] if group is not None else sorted(self._secrets)
            removed = [name for name in names if self._secrets.pop(name, None) is not None]
            if not self.production:
                removed = sorted(set(removed) | set(ActivationStore(self.settings.run_dir).deactivate(group)))
            self._reopen()
        return removed

    def active_groups(self) -> list[str]:
        return sorted(self._secrets)

    def status(self) -> SignerStatus:
        return SignerStatus(
            environment=self.settings.environment.value,
            backend=self.settings.keystore_backend,
            active_groups=tuple(self.active_groups()),
            signatures=dict(self._counts),
            pid=os.getpid(),
        )

    # ----- the keystore ------------------------------------------------------------------------

    def _pin_for(self, label: str) -> str:
        secret = self._secrets.get(self.registry.group_of_token(label))
        if secret is None:
            raise KeyStoreError(INACTIVE_MESSAGE)
        return user_pin(secret, label)

    def _open(self) -> KeyStore:
        settings = self.settings
        if settings.keystore_backend == "pkcs11":
            from mpki.keys.pkcs11 import Pkcs11KeyStore

            return Pkcs11KeyStore(settings.pkcs11_module, self._pin_for)
        group = SoftwareKeyStore.quorum_group(settings.keys_dir)
        if group is None:
            return SoftwareKeyStore.open(settings.keys_dir, kek_passphrase(settings))
        secret = self._secrets.get(group)
        if secret is None:
            return SoftwareKeyStore.open_inactive(settings.keys_dir)
        return SoftwareKeyStore.open_with_secret(settings.keys_dir, secret)

    def _reopen(self) -> None:
        old, self._keystore = self._keystore, None
        close = getattr(old, "close", None)
        if callable(close):
            close()

    @property
    def keystore(self) -> KeyStore:
        with self._lock:
            if self._keystore is None:
                self._keystore = self._open()
            return self._keystore

    def close(self) -> None:
        with self._lock:
            self._reopen()

    def is_active(self) -> bool:
        return self.keystore.is_active()

    def list_keys(self) -> list[KeyInfo]:
        return self.keystore.list_keys()

    def info(self, key_id: str) -> KeyInfo:
        return self.keystore.info(key_id)

    def generate(self, label: str, algorithm: KeyAlgorithm, token: str | None, purposes: frozenset[Purpose]) -> KeyInfo:
        """Make a key inside the keystore and record what it may sign, before anyone can use it."""
        if not purposes:
            raise InvalidRequest("a key is made for at least one purpose")
        info = self.keystore.generate(label, algorithm, token)
        self.purposes.record(info.key_id, purposes)
        return info

    # ----- signing -----------------------------------------------------------------------------

    def sign(self, key_id: str, purpose: Purpose, hash_name: str, payloads: Sequence[bytes]) -> list[bytes]:
        """Sign each to-be-signed payload with one key for one purpose; all or nothing."""
        self.purposes.check(key_id, purpose)
        algorithm = HASHES.get(hash_name)
        if algorithm is None:
            raise InvalidRequest(f"the signer does not sign with hash {hash_name!r}")
        for payload in payloads:
            if not shape_matches(purpose, payload):
                raise InvalidRequest(f"what was sent for a {purpose.value} signature is not shaped like one")
        key = self.keystore.signing_key(key_id)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            ecdsa = ec.ECDSA(algorithm())
            signatures = [key.sign(payload, ecdsa) for payload in payloads]
        elif isinstance(key, rsa.RSAPrivateKey):
            pkcs1 = padding.PKCS1v15()
            signatures = [key.sign(payload, pkcs1, algorithm()) for payload in payloads]
        else:
            raise KeyStoreError(f"key {key_id} is of a type the signer does not sign with")
        self._counts[purpose.value] += len(signatures)
        return signatures

    # ----- audit checkpoints -------------------------------------------------------------------

    def _audit_key(self) -> KeyInfo:
        """The key made only for audit checkpoints; made on first use while the keys are active."""
        with self._lock:
            for info in self.list_keys():
                if Purpose.AUDIT_CHECKPOINT in self.purposes.of(info.key_id):
                    return info
            tokens = [label for label, group in self.registry.tokens().items() if group in self._secrets]
            token = tokens[0] if self.settings.keystore_backend == "pkcs11" and tokens else None
            return self.generate(AUDIT_KEY_LABEL, KeyAlgorithm.EC_P256, token, frozenset({Purpose.AUDIT_CHECKPOINT}))

    def checkpoint(self, sequence: int, chain_hash: str) -> SignedCheckpoint:
        """Sign (sequence, chain hash, now) with the audit key and append it to the anchor directory."""
        key = self._audit_key()

        def sign(data: bytes) -> bytes:
            return self.sign(key.key_id, Purpose.AUDIT_CHECKPOINT, "sha256", [data])[0]

        directory = self.settings.audit_anchor_dir
        anchors = AnchorDirectory(directory) if directory is not None else None
        with self._lock:  # one notary at a time: the anchor log's order is the signing order
            return CheckpointNotary(sign, key.key_id, key.public_key_der, anchors).checkpoint(sequence, chain_hash)
