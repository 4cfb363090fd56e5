"""The apex contingency public key, kept encrypted in the apex trust anchor (RFC 5934 id-pe-wrappedApexContinKey).

The key is a SubjectPublicKeyInfo encrypted with AES Key Wrap with Padding (RFC 5649): a DER SPKI is not
a multiple of 8 octets, which plain RFC 3394 wrap needs. The symmetric key stays with the operator until
the apex is compromised; it then travels, in the clear, as the id-aa-TAMP-contingencyPublicKeyDecryptKey
unsigned attribute of the TAMPApexUpdate that the contingency private key signs.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mpki.asn1.tamp import WRAPPED_APEX_CONTIN_KEY_EXT, ApexContingencyKey, Extension, StatusCode
from mpki.keys.contingency import WRAP_ALGORITHMS, wrap_public_key
from mpki.tams.errors import TampRefused
from mpki.tams.signing import PublicKey

AES128_WRAP_PAD, AES192_WRAP_PAD, AES256_WRAP_PAD = (WRAP_ALGORITHMS[size] for size in (16, 24, 32))
_KEY_SIZES = {alg: size for size, alg in WRAP_ALGORITHMS.items()}


def wrap_contingency_key(public_key: PublicKey, decrypt_key: bytes) -> ApexContingencyKey:
    """Encrypt the contingency public key under a 16, 24 or 32-octet AES key for the apex's extension
    (the key ceremony's own operation, `keys.contingency.wrap_public_key`)."""
    return wrap_public_key(public_key, decrypt_key)


def contingency_extension(key: ApexContingencyKey) -> Extension:
    """The non-critical id-pe-wrappedApexContinKey extension, for a TrustAnchorInfo or (as an
    `x509.UnrecognizedExtension`) a root certificate."""
    return Extension(WRAPPED_APEX_CONTIN_KEY_EXT, False, key.encode())


def unwrap_contingency_key(key: ApexContingencyKey, decrypt_key: bytes) -> PublicKey:
    """The contingency public key, or TampRefused: unsupported algorithm, or a key that does not unwrap it."""
    size = _KEY_SIZES.get(key.wrap_algorithm)
    if size is None:
        raise TampRefused(
            StatusCode.unsupportedContinPubKeyDecryptAlg, f"contingency key wrap {key.wrap_algorithm} is not supported"
        )
    if len(decrypt_key) != size:
        raise TampRefused(StatusCode.contingencyPublicKeyDecrypt, "the decrypt key has the wrong length")
    try:
        spki = keywrap.aes_key_unwrap_with_padding(decrypt_key, key.wrapped)
        public_key = serialization.load_der_public_key(spki)
    except (keywrap.InvalidUnwrap, ValueError):
        raise TampRefused(
            StatusCode.contingencyPublicKeyDecrypt, "the contingency public key does not unwrap"
        ) from None
    if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise TampRefused(StatusCode.unsupportedTAAlgorithm, "the contingency public key's algorithm is not supported")
    return public_key
