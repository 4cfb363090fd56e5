"""Parsing CSRs from untrusted bytes, with one-line errors a subscriber can act on."""

from __future__ import annotations

from cryptography import x509

from mpki.domain import InvalidRequest

PEM_MARKER = b"-----BEGIN"


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PKCS#10 request given as PEM or DER; the proof of possession is checked separately."""
    stripped = data.strip()
    if not stripped:
        raise InvalidRequest("the CSR is empty")
    if stripped.startswith(PEM_MARKER):
        if (
            b"-----BEGIN CERTIFICATE REQUEST-----" not in stripped
            and b"-----BEGIN NEW CERTIFICATE REQUEST-----" not in stripped
        ):
            raise InvalidRequest("the PEM block is not a CERTIFICATE REQUEST")
        try:
            return x509.load_pem_x509_csr(stripped.replace(b"NEW CERTIFICATE REQUEST", b"CERTIFICATE REQUEST"))
        except ValueError:
            raise InvalidRequest("the PEM CSR could not be decoded (bad base64 or not a PKCS#10 request)") from None
    if stripped[:1] != b"\x30":
        raise InvalidRequest("the CSR is neither PEM nor DER (DER starts with a SEQUENCE)")
    try:
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise InvalidRequest("the DER CSR is malformed or truncated") from None
