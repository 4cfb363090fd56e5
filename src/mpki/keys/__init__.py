"""Key custody: the KeyStore interface and its backends. Private key material never leaves this room."""

from mpki.keys.interface import INACTIVE_MESSAGE, KeyAlgorithm, KeyInfo, KeyStore, key_id_for
from mpki.keys.proxies import EcSigningKey, RsaSigningKey
from mpki.keys.software import SoftwareKeyStore

__all__ = [
    "INACTIVE_MESSAGE",
    "EcSigningKey",
    "KeyAlgorithm",
    "KeyInfo",
    "KeyStore",
    "RsaSigningKey",
    "SoftwareKeyStore",
    "key_id_for",
]
