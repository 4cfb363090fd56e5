"""Fields of a certificate exactly as encoded, for where a re-encoding could differ from the original."""

from __future__ import annotations

from mpki.asn1.der import read_tlv

_EXPLICIT_VERSION = 0xA0


def subject_der(certificate_der: bytes) -> bytes:
    """The subject Name's DER as it stands in the certificate. A CRL's issuer and an OCSP CertID's name
    hash must match the CA certificate's subject octet for octet; `x509.Name.public_bytes()` re-encodes,
    which is the same only for certificates whose names were encoded the way `cryptography` does."""
    _, certificate, _ = read_tlv(certificate_der, 0, "Certificate")
    _, tbs, _ = read_tlv(certificate, 0, "TBSCertificate")
    offset = 0
    tag, _, after = read_tlv(tbs, offset, "version")
    if tag == _EXPLICIT_VERSION:
        offset = after
    for what in ("serialNumber", "signature", "issuer", "validity"):
        _, _, offset = read_tlv(tbs, offset, what)
    start = offset
    _, _, end = read_tlv(tbs, offset, "subject")
    return tbs[start:end]
