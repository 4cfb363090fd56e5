"""PKCS#11 keystore: CA keys made and used inside an HSM (SoftHSM2 in development).

A key is a pair of token objects sharing one CKA_ID, the first 16 octets of SHA-256 over its
SubjectPublicKeyInfo (`key_id_for`); its mpki key id is `"<token label>/<CKA_ID in hex>"`. The public key
object is public (CKA_PRIVATE false), so an inactive keystore can still describe its keys; everything
else needs the token's user PIN, which `pin_for(token_label)` supplies once the custodians' shares have
been presented.

Every private key (CA, OCSP responder, apex contingency: whatever `generate` makes) is made with

    CKA_SENSITIVE=true, CKA_EXTRACTABLE=false, CKA_SIGN=true, CKA_PRIVATE=true

so that it never leaves the token in any form. SENSITIVE forbids reading CKA_VALUE; EXTRACTABLE=false
makes C_WrapKey refuse it under every key, one the session makes included (neither can be undone).
PRIVATE hides it from sessions without the user PIN; SIGN alone (DECRYPT, UNWRAP, DERIVE false) gives
it one use. No wrapping key lives on the token: an extractable key, even one restricted to trusted
wrapping keys, leaves whoever holds the user PIN (the activation quorum) one step from a copy they can
open offline. A backup is the token's own protected object store instead, sealed again under the
backup group's key (`keys.token_backups`; on a production HSM, the vendor's cloning).

SoftHSM2 has no CKM_ECDSA_SHA256: signatures are made by hashing here and signing the digest with
CKM_ECDSA (raw r||s, converted to DER) or, for RSA, by signing a PKCS#1 DigestInfo with CKM_RSA_PKCS.
Hashing here also means a large CRL never has to cross to the HSM.

Every call into the module is serialised through the module's lock, and each token has one logged-in
session per process (see `pkcs11_tokens`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11errors

from mpki.domain import KeyStoreError, NotFound
from mpki.keys.interface import INACTIVE_MESSAGE, KeyAlgorithm, KeyInfo, KeyStore, PublicKey, key_id_for
from mpki.keys.pkcs11_tokens import TokenSessions, module_handle, pin_digest
from mpki.keys.proxies import Data, EcSigningKey, RsaHash, RsaSigningKey

_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1(),
    KeyAlgorithm.EC_P384: ec.SECP384R1(),
}
_EC_PARAMS: dict[KeyAlgorithm, bytes] = {  # CKA_EC_PARAMS: the namedCurve OID, DER
    KeyAlgorithm.EC_P256: bytes.fromhex("06082a8648ce3d030107"),
    KeyAlgorithm.EC_P384: bytes.fromhex("06052b81040022"),
}
_RSA_BITS = 3072

# PKCS#1 v1.5 DigestInfo prefixes (RFC 8017 section 9.2, note 1).
_DIGEST_INFO: dict[str, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_RSA_HASH_MECHANISMS: dict[str, Mechanism] = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}

_SIGN_ONLY = MechanismFlag.SIGN | MechanismFlag.VERIFY
_PUBLIC_TEMPLATE: dict[Attribute, Any] = {
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
}
_PRIVATE_TEMPLATE: dict[Attribute, Any] = {
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}


def _ec_point(value: bytes, curve: ec.EllipticCurve) -> bytes:
    """The X9.62 point from CKA_EC_POINT: a DER OCTET STRING around it (some modules give it bare)."""
    bare_size = 1 + 2 * ((curve.key_size + 7) // 8)
    if len(value) == bare_size:
        return value
    if len(value) >= 2 and value[0] == 0x04 and value[1] < 0x80 and value[1] == len(value) - 2:
        return value[2:]
    raise KeyStoreError("the token returned an EC point mpki cannot read")


def _hash(data: Data, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(bytes(data))
    return digest.finalize()


def _hash_name(algorithm: RsaHash | hashes.HashAlgorithm) -> tuple[str, bool]:
    """(hash name, whether the data is already a digest)."""
    if isinstance(algorithm, utils.Prehashed):
        inner = getattr(algorithm, "_algorithm", None)
        if not isinstance(inner, hashes.HashAlgorithm):
            raise KeyStoreError("cannot tell which hash a Prehashed digest was made with")
        return inner.name, True
    if isinstance(algorithm, hashes.HashAlgorithm):
        return algorithm.name, False
    raise KeyStoreError("RSA signatures from the HSM carry a DigestInfo; NoDigestInfo is not supported")


def _algorithm_of(public: PublicKey) -> KeyAlgorithm | None:
    if isinstance(public, ec.EllipticCurvePublicKey):
        for algorithm, curve in _CURVES.items():
            if public.curve.name == curve.name:
                return algorithm
        return None
    if public.key_size == _RSA_BITS:
        return KeyAlgorithm.RSA_3072
    return None


def _spki(public: PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _public_from_object(obj: Any) -> PublicKey | None:
    """The public key a PKCS#11 public-key object holds, if it is a kind mpki uses."""
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        params = bytes(obj[Attribute.EC_PARAMS])
        for algorithm, encoded in _EC_PARAMS.items():
            if params == encoded:
                curve = _CURVES[algorithm]
                return ec.EllipticCurvePublicKey.from_encoded_point(curve, _ec_point(obj[Attribute.EC_POINT], curve))
        return None
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(obj[Attribute.MODULUS], "big")
        exponent = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    return None


def _parse_key_id(key_id: str) -> tuple[str, bytes]:
    token, slash, hex_id = key_id.rpartition("/")
    try:
        cka_id = bytes.fromhex(hex_id)
    except ValueError:
        cka_id = b""
    if not slash or not token or not cka_id:
        raise NotFound(f"no key {key_id!r}: a PKCS#11 key id is '<token label>/<CKA_ID in hex>'")
    return token, cka_id


def _private_key(record: TokenSessions, cka_id: bytes, key_id: str) -> Any:
    """The private-key object with this CKA_ID, from the token's logged-in session (lock held)."""
    key = record.private_keys.get(cka_id)
    if key is None:
        try:
            key = record.user.get_key(object_class=ObjectClass.PRIVATE_KEY, id=cka_id)
        except p11errors.NoSuchKey:
            raise NotFound(f"no private key {key_id} on its token") from None
        except p11errors.MultipleObjectsReturned:
            raise KeyStoreError(f"several private keys carry the id of {key_id}") from None
        record.private_keys[cka_id] = key
    return key


def _ec_sign_raw(key: Any, digest: bytes) -> bytes:
    """CKM_ECDSA over a digest, returned as a DER ECDSA-Sig-Value (lock held)."""
    raw = key.sign(digest, mechanism=Mechanism.ECDSA)
    half = len(raw) // 2
    return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def _rsa_sign_raw(key: Any, data: bytes, hash_name: str, prehashed: bool, hash_on_token: bool) -> bytes:
    """PKCS#1 v1.5: a DigestInfo with CKM_RSA_PKCS, or the data with CKM_SHAxxx_RSA_PKCS (lock held)."""
    if hash_on_token and not prehashed:
        signature: bytes = key.sign(data, mechanism=_RSA_HASH_MECHANISMS[hash_name])
        return signature
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[hash_name]
    digest = data if prehashed else _hash(data, algorithm)
    signature = key.sign(_DIGEST_INFO[hash_name] + digest, mechanism=Mechanism.RSA_PKCS)
    return signature


class Pkcs11KeyStore(KeyStore):
    """Keys on the tokens of one PKCS#11 module. `pin_for(token_label)` gives a token's user PIN;
    without it the store is inactive: it describes keys but refuses to use them."""

    backend_name = "pkcs11"

    def __init__(self, module: str, pin_for: Callable[[str], str] | None) -> None:
        self._module = module_handle(module)
        self._pin_for = pin_for
        self._pins: dict[str, tuple[str, bytes]] = {}
        self._pins_lock = threading.Lock()
        self._touched: set[str] = set()

    def __enter__(self) -> Pkcs11KeyStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def module(self) -> str:
        return self._module.path

    def is_active(self) -> bool:
        return self._pin_for is not None

    def tokens(self) -> list[str]:
        """Labels of the initialised tokens this store can see."""
        with self._module.lock:
            return self._module.labels()

    # --- sessions -----------------------------------------------------------------------------

    def _pin(self, token: str) -> tuple[str, bytes]:
        with self._pins_lock:
            cached = self._pins.get(token)
            if cached is None:
                if self._pin_for is None:
                    raise KeyStoreError(INACTIVE_MESSAGE)
                pin = self._pin_for(token)
                cached = self._pins[token] = (pin, pin_digest(pin))
                self._touched.add(token)
            return cached

    def _user(self, token: str) -> TokenSessions:
        """The token's logged-in session record. Call `_pin(token)` before taking the module lock."""
        pin, digest = self._pin(token)
        return self._module.user_session(token, pin, digest)

    def _choose_token(self, token: str | None) -> str:
        if token is not None:
            return token
        labels = self.tokens()
        if len(labels) != 1:
            known = ", ".join(labels) or "none"
            raise KeyStoreError(f"name the token to use (initialised tokens: {known})")
        return labels[0]

    def close(self) -> None:
        """Log out of and close the sessions on the tokens this store used. They are shared with any
        other keystore on the same tokens in this process, which reopens them on its next use."""
        with self._pins_lock:
            touched, self._touched = self._touched, set()
            self._pins.clear()
        for token in touched:
            self._module.close_token(token)

    # --- describing ---------------------------------------------------------------------------

    def _describe(self, token: str, obj: Any) -> KeyInfo | None:
        public = _public_from_object(obj)
        if public is None:
            return None
        algorithm = _algorithm_of(public)
        cka_id = bytes(obj[Attribute.ID])
        if algorithm is None or not cka_id:
            return None
        return KeyInfo(
            key_id=f"{token}/{cka_id.hex()}",
            label=str(obj[Attribute.LABEL]),
            algorithm=algorithm,
            backend=self.backend_name,
            public_key_der=_spki(public),
            token=token,
        )

    def info(self, key_id: str) -> KeyInfo:
        token, cka_id = _parse_key_id(key_id)
        with self._module.lock:
            session = self._module.public_session(token)
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: cka_id}):
                described = self._describe(token, obj)
                if described is not None:
                    return described
        raise NotFound(f"no key {key_id}")

    def list_keys(self) -> list[KeyInfo]:
        found: list[KeyInfo] = []
        with self._module.lock:
            for token in self._module.labels():
                session = self._module.public_session(token)
                for obj in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
                    described = self._describe(token, obj)
                    if described is not None:
                        found.append(described)
        return sorted(found, key=lambda k: (k.token or "", k.label, k.key_id))

    # --- making keys --------------------------------------------------------------------------

    def generate(self, label: str, algorithm: KeyAlgorithm, token: str | None = None) -> KeyInfo:
        token_label = self._choose_token(token)
        self._pin(token_label)
        temporary_id = b"mpki-new-" + os.urandom(8)
        with self._module.lock:
            session = self._user(token_label).user
            try:
                if algorithm in _CURVES:
                    parameters = session.create_domain_parameters(
                        KeyType.EC, {Attribute.EC_PARAMS: _EC_PARAMS[algorithm]}, local=True
                    )
                    public_obj, private_obj = parameters.generate_keypair(
                        store=True,
                        id=temporary_id,
                        label=label,
                        capabilities=_SIGN_ONLY,
                        public_template=_PUBLIC_TEMPLATE,
                        private_template=_PRIVATE_TEMPLATE,
                    )
                else:
                    public_obj, private_obj = session.generate_keypair(
                        KeyType.RSA,
                        _RSA_BITS,
                        store=True,
                        id=temporary_id,
                        label=label,
                        capabilities=_SIGN_ONLY,
                        public_template=_PUBLIC_TEMPLATE,
                        private_template=_PRIVATE_TEMPLATE,
                    )
            except p11errors.PKCS11Error as exc:
                raise KeyStoreError(f"token {token_label!r} could not generate a {algorithm} key: {exc!r}") from None
            try:
                public = _public_from_object(public_obj)
                if public is None:
                    raise KeyStoreError(f"token {token_label!r} made a key mpki cannot read")
                cka_id = bytes.fromhex(key_id_for(public))
                public_obj[Attribute.ID] = cka_id
                private_obj[Attribute.ID] = cka_id
            except BaseException:
                private_obj.destroy()
                public_obj.destroy()
                raise
        return KeyInfo(f"{token_label}/{cka_id.hex()}", label, algorithm, self.backend_name, _spki(public), token_label)

    # --- signing ------------------------------------------------------------------------------

    def signing_key(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        token, cka_id = _parse_key_id(key_id)
        self._pin(token)  # refuses when inactive
        info = self.info(key_id)
        public = info.public_key()
        module = self._module
        with module.lock:
            record = self._user(token)
            _private_key(record, cka_id, key_id)  # fail now, not at the first signature
            mechanisms = module.mechanisms(token)

        if isinstance(public, ec.EllipticCurvePublicKey):

            def ec_sign(data: Data, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
                if not isinstance(signature_algorithm, ec.ECDSA):
                    raise KeyStoreError("an EC key in the HSM makes ECDSA signatures only")
                chosen = signature_algorithm.algorithm
                digest = bytes(data) if isinstance(chosen, utils.Prehashed) else _hash(data, chosen)
                pin, pin_dig = self._pin(token)
                try:
                    with module.lock:
                        key = _private_key(module.user_session(token, pin, pin_dig), cka_id, key_id)
                        return _ec_sign_raw(key, digest)
                except p11errors.PKCS11Error as exc:
                    raise KeyStoreError(f"the token refused to sign with {key_id}: {exc!r}") from None

            return EcSigningKey(key_id, public, ec_sign)

        hash_on_token = Mechanism.RSA_PKCS not in mechanisms

        def rsa_sign(data: Data, pad: padding.AsymmetricPadding, algorithm: RsaHash) -> bytes:
            if not isinstance(pad, padding.PKCS1v15):
                raise KeyStoreError("an RSA key in the HSM makes PKCS#1 v1.5 signatures only")
            hash_name, prehashed = _hash_name(algorithm)
            if hash_name not in _DIGEST_INFO:
                raise KeyStoreError(f"unsupported hash {hash_name} for an RSA signature")
            pin, pin_dig = self._pin(token)
            try:
                with module.lock:
                    key = _private_key(module.user_session(token, pin, pin_dig), cka_id, key_id)
                    return _rsa_sign_raw(key, bytes(data), hash_name, prehashed, hash_on_token)
            except p11errors.PKCS11Error as exc:
                raise KeyStoreError(f"the token refused to sign with {key_id}: {exc!r}") from None

        return RsaSigningKey(key_id, public, rsa_sign)
