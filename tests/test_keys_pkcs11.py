"""The PKCS#11 keystore on real SoftHSM2 tokens: keys that can be neither read nor wrapped out,
signatures OpenSSL accepts, and calls serialised across threads. (Token backups: test_key_backup.py.)"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from mpki.domain import KeyStoreError, NotFound
from mpki.keys import KeyAlgorithm, KeyInfo
from tests.hsm import SoftHsm, softhsm  # noqa: F401

pkcs11 = pytest.importorskip("pkcs11")
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass  # noqa: E402
from pkcs11 import exceptions as p11errors  # noqa: E402

from mpki.keys.pkcs11 import INACTIVE_MESSAGE, Pkcs11KeyStore  # noqa: E402
from mpki.keys.pkcs11_tokens import (  # noqa: E402
    initialise_token,
    module_handle,
    pin_digest,
    token_labels,
)

PINS = {"ca-a": "user-pin-a", "ca-b": "user-pin-b", "spare": "user-pin-s"}
SO_PIN = "so-pin-1234"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def hsm(softhsm: SoftHsm) -> SoftHsm:  # noqa: F811
    """Two tokens, ca-a and ca-b."""
    softhsm.init_token("ca-a", SO_PIN, PINS["ca-a"])
    softhsm.init_token("ca-b", SO_PIN, PINS["ca-b"])
    return softhsm


@pytest.fixture
def store(hsm: SoftHsm) -> Iterator[Pkcs11KeyStore]:
    keystore = Pkcs11KeyStore(hsm.module, PINS.__getitem__)
    yield keystore
    keystore.close()


def _token_object(module: str, token: str, object_class: ObjectClass, cka_id: bytes) -> Any:
    """A raw python-pkcs11 object from the token, through the process's one logged-in session."""
    handle = module_handle(module)
    with handle.lock:
        record = handle.user_session(token, PINS[token], pin_digest(PINS[token]))
        return record.user.get_key(object_class=object_class, id=cka_id)


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_certificate(key: CertificateIssuerPrivateKeyTypes, cn: str = "HSM Test Root") -> x509.Certificate:
    public = key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _hash_for(key))
    )


def _leaf_certificate(
    ca_key: CertificateIssuerPrivateKeyTypes, ca: x509.Certificate, cn: str = "leaf"
) -> x509.Certificate:
    leaf_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(leaf_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, _hash_for(ca_key))
    )


def _write_pem(path: Path, obj: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    return path


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


def _openssl_verifies(tmp_path: Path, ca: x509.Certificate, leaf: x509.Certificate) -> None:
    ca_pem = _write_pem(tmp_path / "ca.pem", ca)
    leaf_pem = _write_pem(tmp_path / "leaf.pem", leaf)
    result = _openssl("verify", "-CAfile", ca_pem, leaf_pem)
    assert result.returncode == 0 and f"{leaf_pem}: OK" in result.stdout, result.stdout + result.stderr


# --- custody -------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_3072])
def test_a_generated_key_can_be_neither_read_nor_wrapped_out(
    hsm: SoftHsm, store: Pkcs11KeyStore, algorithm: KeyAlgorithm
) -> None:
    info = store.generate("root", algorithm, "ca-a")
    token, _, hex_id = info.key_id.partition("/")
    assert token == "ca-a" and info.token == "ca-a" and info.backend == "pkcs11"
    private = _token_object(hsm.module, "ca-a", ObjectClass.PRIVATE_KEY, bytes.fromhex(hex_id))

    assert private[Attribute.SENSITIVE] and private[Attribute.PRIVATE] and private[Attribute.SIGN]
    assert not private[Attribute.EXTRACTABLE] and not private[Attribute.WRAP_WITH_TRUSTED]
    assert not private[Attribute.DECRYPT] and not private[Attribute.DERIVE] and not private[Attribute.UNWRAP]
    handle = module_handle(hsm.module)
    with handle.lock:
        secret_part = Attribute.PRIVATE_EXPONENT if algorithm is KeyAlgorithm.RSA_3072 else Attribute.VALUE
        with pytest.raises(p11errors.AttributeSensitive):
            private[secret_part]
        with pytest.raises(p11errors.PKCS11Error):  # SENSITIVE can never be cleared again
            private[Attribute.SENSITIVE] = False
        with pytest.raises(p11errors.PKCS11Error):  # nor EXTRACTABLE set again
            private[Attribute.EXTRACTABLE] = True
        # No wrapping key, one the user session makes included, takes the key out of the token.
        session = handle.sessions("ca-a").user
        for mechanism in (Mechanism.AES_KEY_WRAP_PAD, Mechanism.AES_KEY_WRAP):
            wrapping = session.generate_key(KeyType.AES, 256, template={Attribute.TOKEN: False})
            with pytest.raises(p11errors.KeyUnextractable):
                wrapping.wrap_key(private, mechanism=mechanism)
            wrapping.destroy()
        assert list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})) == []  # nothing to wrap with

    key = store.signing_key(info.key_id)
    with pytest.raises(KeyStoreError, match="never leave"):
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_key_ids_derive_from_the_public_key_and_keys_are_listed(store: Pkcs11KeyStore) -> None:
    from mpki.keys import key_id_for

    made = [
        store.generate("p256", KeyAlgorithm.EC_P256, "ca-a"),
        store.generate("p384", KeyAlgorithm.EC_P384, "ca-a"),
        store.generate("other", KeyAlgorithm.EC_P256, "ca-b"),
    ]
    for info in made:
        assert info.key_id == f"{info.token}/{key_id_for(info.public_key())}"
        assert store.info(info.key_id) == info
    assert sorted(store.list_keys(), key=lambda k: k.key_id) == sorted(made, key=lambda k: k.key_id)
    with pytest.raises(NotFound):
        store.info("ca-a/" + "00" * 16)
    with pytest.raises(NotFound):
        store.signing_key("not-a-key-id")
    with pytest.raises(KeyStoreError, match="name the token"):
        store.generate("where", KeyAlgorithm.EC_P256)


# --- signatures that OpenSSL accepts -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384, KeyAlgorithm.RSA_3072])
def test_certificate_crl_and_ocsp_response_signed_in_the_hsm_verify_with_openssl(
    store: Pkcs11KeyStore, tmp_path: Path, algorithm: KeyAlgorithm
) -> None:
    info = store.generate(f"root-{algorithm}", algorithm, "ca-a")
    key = store.signing_key(info.key_id)
    assert key.public_key() == info.public_key()
    ca = _ca_certificate(key)
    leaf = _leaf_certificate(key, ca)
    revoked = _leaf_certificate(key, ca, "revoked")
    _openssl_verifies(tmp_path, ca, leaf)

    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(revoked.serial_number)
        .revocation_date(NOW - dt.timedelta(minutes=5))
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(NOW - dt.timedelta(minutes=1))
        .next_update(NOW + dt.timedelta(days=1))
        .add_revoked_certificate(entry)
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(key, _hash_for(key))
    )
    ca_pem = tmp_path / "ca.pem"
    crl_pem = _write_pem(tmp_path / "crl.pem", crl)
    result = _openssl("crl", "-in", crl_pem, "-CAfile", ca_pem, "-verify", "-noout")
    assert result.returncode == 0 and "verify OK" in result.stdout + result.stderr, result.stderr
    revoked_pem = _write_pem(tmp_path / "revoked.pem", revoked)
    result = _openssl("verify", "-crl_check", "-CAfile", ca_pem, "-CRLfile", crl_pem, revoked_pem)
    assert result.returncode != 0 and "certificate revoked" in result.stdout + result.stderr

    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=ca,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW - dt.timedelta(minutes=1),
            next_update=NOW + dt.timedelta(hours=12),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
        .sign(key, _hash_for(key))
    )
    response_der = tmp_path / "response.der"
    response_der.write_bytes(response.public_bytes(serialization.Encoding.DER))
    leaf_pem = tmp_path / "leaf.pem"
    result = _openssl(
        "ocsp", "-respin", response_der, "-issuer", ca_pem, "-CAfile", ca_pem, "-sha256", "-cert", leaf_pem, "-no_nonce"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{leaf_pem}: good" in result.stdout

    # and the same command refuses a response whose signature is damaged: the check can fail
    damaged = bytearray(response.public_bytes(serialization.Encoding.DER))
    damaged[-1] ^= 0x01  # the last octet of the signature value
    response_der.write_bytes(bytes(damaged))
    result = _openssl(
        "ocsp", "-respin", response_der, "-issuer", ca_pem, "-CAfile", ca_pem, "-sha256", "-cert", leaf_pem, "-no_nonce"
    )
    assert "Response verify OK" not in result.stdout + result.stderr


def test_rsa_signatures_are_pkcs1v15_only(store: Pkcs11KeyStore) -> None:
    info = store.generate("rsa", KeyAlgorithm.RSA_3072, "ca-a")
    key = store.signing_key(info.key_id)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    public = info.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        signature = key.sign(b"message", padding.PKCS1v15(), algorithm)
        public.verify(signature, b"message", padding.PKCS1v15(), algorithm)
    with pytest.raises(KeyStoreError, match=r"PKCS#1 v1\.5"):
        key.sign(b"message", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


# --- activation ----------------------------------------------------------------------------------


def test_inactive_keystore_describes_keys_but_refuses_to_use_them(hsm: SoftHsm) -> None:
    with Pkcs11KeyStore(hsm.module, PINS.__getitem__) as active:
        assert active.is_active()
        info = active.generate("root", KeyAlgorithm.EC_P256, "ca-a")
    # closed: no session in this process is logged in any more, so what follows sees public objects only

    inactive = Pkcs11KeyStore(hsm.module, None)
    assert not inactive.is_active()
    assert inactive.info(info.key_id) == info
    assert inactive.list_keys() == [info]
    with pytest.raises(KeyStoreError) as refused:
        inactive.signing_key(info.key_id)
    assert str(refused.value) == INACTIVE_MESSAGE
    with pytest.raises(KeyStoreError, match="mpki keys activate"):
        inactive.generate("another", KeyAlgorithm.EC_P256, "ca-a")
    inactive.close()


def test_a_wrong_pin_is_refused_even_after_another_store_logged_in(hsm: SoftHsm) -> None:
    with Pkcs11KeyStore(hsm.module, PINS.__getitem__) as right:
        info = right.generate("root", KeyAlgorithm.EC_P256, "ca-a")
        key = right.signing_key(info.key_id)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        key.sign(b"x", ec.ECDSA(hashes.SHA256()))
        wrong = Pkcs11KeyStore(hsm.module, lambda _token: "not-the-pin")
        with pytest.raises(KeyStoreError, match=r"PIN .* is wrong"):
            wrong.signing_key(info.key_id)
    with pytest.raises(KeyStoreError, match=r"PIN .* is wrong"):
        Pkcs11KeyStore(hsm.module, lambda _token: "not-the-pin").signing_key(info.key_id)


# --- tokens --------------------------------------------------------------------------------------


def test_token_initialisation_refuses_an_existing_label(hsm: SoftHsm) -> None:
    assert token_labels(hsm.module) == ["ca-a", "ca-b"]
    with pytest.raises(KeyStoreError, match="already exists"):
        initialise_token(hsm.module, "ca-a", "another-so", "another-user")
    with pytest.raises(KeyStoreError, match="a token label is 1 to 32 bytes"):
        initialise_token(hsm.module, "x" * 33, SO_PIN, "user-pin")


def test_a_token_initialised_by_another_process_is_found_by_label(softhsm: SoftHsm) -> None:  # noqa: F811
    with Pkcs11KeyStore(softhsm.module, PINS.__getitem__) as keystore:
        assert keystore.list_keys() == []  # the module is loaded now, before the token exists
        base = ["pkcs11-tool", "--module", softhsm.module]
        set_user_pin = ["--login", "--login-type", "so", "--so-pin", SO_PIN, "--init-pin", "--pin", PINS["spare"]]
        subprocess.run(
            [*base, "--init-token", "--slot", "0", "--label", "spare", "--so-pin", SO_PIN],
            env=softhsm.env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*base, "--token-label", "spare", *set_user_pin],
            env=softhsm.env,
            check=True,
            capture_output=True,
        )
        info = keystore.generate("late", KeyAlgorithm.EC_P256, "spare")
        assert keystore.list_keys() == [info]
    with pytest.raises(KeyStoreError, match="no token labelled 'absent'"):
        Pkcs11KeyStore(softhsm.module, lambda _token: "any-pin").generate("x", KeyAlgorithm.EC_P256, "absent")


# --- threads -------------------------------------------------------------------------------------


def test_signing_from_many_threads_at_once_is_serialised(store: Pkcs11KeyStore) -> None:
    infos: list[KeyInfo] = [
        store.generate("a", KeyAlgorithm.EC_P256, "ca-a"),
        store.generate("b", KeyAlgorithm.EC_P256, "ca-b"),
    ]
    keys = [store.signing_key(info.key_id) for info in infos]
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []
    counts = [0] * 8

    def work(index: int) -> None:
        key = keys[index % 2]
        public = infos[index % 2].public_key()
        assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
        try:
            barrier.wait()
            for n in range(500):
                message = f"thread {index} message {n}".encode() * 10
                public.verify(key.sign(message, ec.ECDSA(hashes.SHA256())), message, ec.ECDSA(hashes.SHA256()))
                counts[index] += 1
                if n % 100 == 50:  # describing keys interleaves with signing too
                    store.info(infos[index % 2].key_id)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert counts == [500] * 8


def test_a_forked_worker_starts_the_module_afresh_and_signs(store: Pkcs11KeyStore) -> None:
    info = store.generate("root", KeyAlgorithm.EC_P256, "ca-a")
    key = store.signing_key(info.key_id)
    public = info.public_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey)
    key.sign(b"parent", ec.ECDSA(hashes.SHA256()))
    handle = module_handle(store.module)
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # another thread is inside the module when the process forks
        with handle.lock:
            locked.set()
            release.wait()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    locked.wait()
    try:
        pid = os.fork()
    finally:
        if pid != 0:
            release.set()
            holder.join()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            signature = key.sign(b"child", ec.ECDSA(hashes.SHA256()))
            public.verify(signature, b"child", ec.ECDSA(hashes.SHA256()))
            status = 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + 30
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung (a lock inherited held, or a session shared with the parent)")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(waited[1]) == 0
    public.verify(key.sign(b"parent again", ec.ECDSA(hashes.SHA256())), b"parent again", ec.ECDSA(hashes.SHA256()))
