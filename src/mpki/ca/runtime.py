"""Wiring one installation together: settings -> database (migrated) -> keystore -> CA."""

from __future__ import annotations

from collections.abc import Callable

from mpki.ca.authority import CertificationAuthority
from mpki.config import Environment, Settings
from mpki.domain import ConfigError, KeyStoreError
from mpki.keys import INACTIVE_MESSAGE, KeyStore, SoftwareKeyStore
from mpki.keys.activation import ActivationStore
from mpki.keys.registry import CustodyRegistry
from mpki.keys.secrets import user_pin
from mpki.store import Database, is_current, upgrade

# Development only: `mpki init --dev` says so loudly, and production refuses it.
DEV_PASSPHRASE = "insecure-development-passphrase"


def kek_passphrase(settings: Settings) -> str:
    if settings.kek_passphrase:
        return settings.kek_passphrase
    if settings.environment is Environment.PRODUCTION:
        raise ConfigError("MPKI_KEK_PASSPHRASE is required in production")
    return DEV_PASSPHRASE


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    database = Database(settings.resolved_database_url)
    database.check_connection()
    if migrate and not is_current(database):
        upgrade(database)
    return database


def pin_source(settings: Settings) -> Callable[[str], str]:
    """PINs for PKCS#11 tokens, derived from the activated secret of the token's quorum group."""
    registry = CustodyRegistry(settings.keys_dir)
    activation = ActivationStore(settings.run_dir)

    def pin_for(label: str) -> str:
        secret = activation.secret(registry.group_of_token(label))
        if secret is None:
            raise KeyStoreError(INACTIVE_MESSAGE)
        return user_pin(secret, label)

    return pin_for


def open_keystore(settings: Settings) -> KeyStore:
    """The installation's keystore, active when its quorum secret (or dev passphrase) is present."""
    if settings.keystore_backend == "pkcs11":
        from mpki.keys.pkcs11 import Pkcs11KeyStore

        return Pkcs11KeyStore(settings.pkcs11_module, pin_source(settings))
    group = SoftwareKeyStore.quorum_group(settings.keys_dir)
    if group is None:
        return SoftwareKeyStore.open(settings.keys_dir, kek_passphrase(settings))
    secret = ActivationStore(settings.run_dir).secret(group)
    if secret is None:
        return SoftwareKeyStore.open_inactive(settings.keys_dir)
    return SoftwareKeyStore.open_with_secret(settings.keys_dir, secret)


def open_authority(settings: Settings, *, create_keystore: bool = False) -> CertificationAuthority:
    """Open (or with `create_keystore`, initialise a passphrase keystore for) everything the CA needs."""
    # The keystore first: a command run before `mpki init` must not leave an empty database behind.
    if create_keystore and not SoftwareKeyStore.exists(settings.keys_dir):
        keystore: KeyStore = SoftwareKeyStore.create(settings.keys_dir, kek_passphrase(settings))
    else:
        keystore = open_keystore(settings)
    return CertificationAuthority(settings, open_database(settings), keystore)
