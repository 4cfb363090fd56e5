"""The apex contingency key's two encodings (RFC 5934): the id-pe-wrappedApexContinKey extension value
(`ApexContingencyKey`, section 9) and the id-aa-TAMP-contingencyPublicKeyDecryptKey unsigned attribute
(`PlaintextSymmetricKey`, section 2.2.4). Wrapping and unwrapping the key is `mpki.tams.contingency`'s job."""

from __future__ import annotations

from dataclasses import dataclass

from pyasn1_alt_modules import rfc5934

from mpki.asn1.cms import octet_string, oid, sequence
from mpki.asn1.tamp.codes import StatusCode, decode_exact


@dataclass(frozen=True, slots=True)
class ApexContingencyKey:
    """id-pe-wrappedApexContinKey: the apex's contingency public key (an SPKI), encrypted with `wrap_algorithm`."""

    wrap_algorithm: str
    wrapped: bytes

    def encode(self) -> bytes:
        return sequence(sequence(oid(self.wrap_algorithm)), octet_string(self.wrapped))

    @classmethod
    def decode(cls, value: bytes) -> ApexContingencyKey:
        parsed = decode_exact(
            value, rfc5934.ApexContingencyKey(), "wrappedApexContinKey", StatusCode.contingencyPublicKeyDecrypt
        )
        return cls(str(parsed["wrapAlgorithm"]["algorithm"]), bytes(parsed["wrappedContinPubKey"]))


def encode_plaintext_symmetric_key(key: bytes) -> bytes:
    """The id-aa-TAMP-contingencyPublicKeyDecryptKey attribute value."""
    return octet_string(key)


def decode_plaintext_symmetric_key(value: bytes) -> bytes:
    """The AES key octets of an id-aa-TAMP-contingencyPublicKeyDecryptKey attribute value."""
    key = decode_exact(
        value, rfc5934.PlaintextSymmetricKey(), "contingency decrypt key (an OCTET STRING)", StatusCode.badUnsignedAttrs
    )
    return bytes(key)
