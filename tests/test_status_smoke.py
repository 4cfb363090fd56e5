"""Status core, in process: revoke, CRL, OCSP (a first check while the room is built)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mpki.ca import CertificationAuthority, IssuanceOrder
from mpki.domain import RevocationReason
from mpki.status import StatusService
from tests.csr_factory import org_csr, random_eui64, tls_server_csr


def test_revoke_publish_answer(authority: CertificationAuthority) -> None:
    status = StatusService(authority)
    org = authority.issue(IssuanceOrder("smki-org", org_csr(random_eui64()), "t"))
    tls = authority.issue(IssuanceOrder("tls-server", tls_server_csr(), "t"))
    report = status.maintain()
    assert report.responses_signed >= 2
    outcome = status.revocations.revoke([org.serial], RevocationReason.KEY_COMPROMISE, actor="agent")
    assert outcome.published
    crl = x509.load_der_x509_crl(status.crls.latest("smki-org-ca").der)
    assert crl.get_revoked_certificate_by_serial_number(int(org.serial, 16)) is not None
    issuer = x509.load_der_x509_certificate(authority.get_ca("smki-org-ca").certificate_der)
    cert = x509.load_der_x509_certificate(org.der)
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    answer = status.ocsp.answer(request.public_bytes(serialization.Encoding.DER))
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    tls_cert = x509.load_der_x509_certificate(tls.der)
    tls_issuer = x509.load_der_x509_certificate(authority.get_ca("tls-issuing").certificate_der)
    request = ocsp.OCSPRequestBuilder().add_certificate(tls_cert, tls_issuer, hashes.SHA1()).build()
    der = request.public_bytes(serialization.Encoding.DER)
    first = status.ocsp.answer(der)
    assert ocsp.load_der_ocsp_response(first.der).certificate_status == ocsp.OCSPCertStatus.GOOD
    cached = status.ocsp.answer_cached(der)
    assert cached is not None and cached.der == first.der
