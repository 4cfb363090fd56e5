"""Everything a quorum secret unlocks, derived with HKDF so that no two uses share key material.

The ceremony makes one random 32-byte secret per quorum group and splits it M-of-N among custodians;
presenting M shares rebuilds it. Each group has one role (`registry.GroupRole`), and each derivation
below is meant for one role's secret only:

- an activation group's secret (`ca-keys`, the contingency vault's own) gives the software KEK and the
  tokens' user PINs: enough to sign, nothing more;
- the backup group's secret gives the backup key, which seals and opens backups (`keys.backups`);
- the token-admin group's secret gives the tokens' security-officer PINs (initialising a token).

The secrets are drawn independently, so no group's shares yield another group's keys: the activation
secret rebuilt from M shares neither opens a backup nor logs in as security officer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_BYTES = 32


def _derive(secret: bytes, purpose: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"mpki/{purpose}".encode()).derive(secret)


def software_kek(secret: bytes) -> bytes:
    """The AES-256 key-encryption key of the software keystore (from an activation group's secret)."""
    return _derive(secret, "software-kek")


def user_pin(secret: bytes, token_label: str) -> str:
    """The PKCS#11 user PIN of one token, from an activation group's secret: 32 base32 characters (fits
    every HSM's PIN length rules)."""
    return base64.b32encode(_derive(secret, f"pkcs11-user-pin/{token_label}", 20)).decode()


def so_pin(secret: bytes, token_label: str) -> str:
    """The PKCS#11 security-officer PIN of one token, from the token-admin group's secret."""
    return base64.b32encode(_derive(secret, f"pkcs11-so-pin/{token_label}", 20)).decode()


def backup_key(secret: bytes) -> bytes:
    """The AES-256 key backups are sealed under (`keys.backups`), from the backup group's secret."""
    return _derive(secret, "backup-key")


def check_value(secret: bytes, group: str) -> str:
    """Stored beside a keystore so a rebuilt secret is recognised (or refused) before it is used."""
    return hmac.new(_derive(secret, "check"), group.encode(), hashlib.sha256).hexdigest()
