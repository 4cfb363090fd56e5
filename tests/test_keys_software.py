"""The software keystore: sealed at rest, refuses wrong passphrases, never hands out key material."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from mpki.domain import KeyStoreError, NotFound
from mpki.keys import KeyAlgorithm, SoftwareKeyStore


def test_keys_are_sealed_and_sign_through_the_interface(tmp_path: Path) -> None:
    store = SoftwareKeyStore.create(tmp_path, "correct horse")
    info = store.generate("root", KeyAlgorithm.EC_P256)
    raw = (tmp_path / f"{info.key_id}.key.json").read_bytes()
    assert b"PRIVATE KEY" not in raw

    key = SoftwareKeyStore.open(tmp_path, "correct horse").signing_key(info.key_id)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    assert csr.is_signature_valid
    assert csr.public_key() == info.public_key()
    with pytest.raises(KeyStoreError, match="never leave"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyStoreError):
        key.private_numbers()


def test_rsa_keys_sign_too(tmp_path: Path) -> None:
    store = SoftwareKeyStore.create(tmp_path, "pw")
    info = store.generate("tls", KeyAlgorithm.RSA_3072)
    key = store.signing_key(info.key_id)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    signature = key.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    public = info.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"message", padding.PKCS1v15(), hashes.SHA256())


def test_wrong_passphrase_and_missing_keys_are_refused(tmp_path: Path) -> None:
    SoftwareKeyStore.create(tmp_path, "right")
    with pytest.raises(KeyStoreError, match="passphrase is wrong"):
        SoftwareKeyStore.open(tmp_path, "wrong")
    with pytest.raises(KeyStoreError, match="already exists"):
        SoftwareKeyStore.create(tmp_path, "again")
    with pytest.raises(NotFound):
        SoftwareKeyStore.open(tmp_path, "right").signing_key("00" * 16)
    with pytest.raises(KeyStoreError, match="no keystore"):
        SoftwareKeyStore.open(tmp_path / "elsewhere", "right")


def test_a_key_file_moved_between_keystores_does_not_decrypt(tmp_path: Path) -> None:
    first = SoftwareKeyStore.create(tmp_path / "a", "one")
    info = first.generate("k", KeyAlgorithm.EC_P256)
    second = SoftwareKeyStore.create(tmp_path / "b", "two")
    (tmp_path / "a" / f"{info.key_id}.key.json").rename(tmp_path / "b" / f"{info.key_id}.key.json")
    with pytest.raises(KeyStoreError, match="does not decrypt"):
        second.signing_key(info.key_id)
