"""OCSP requests and multi-certificate responses (RFC 6960) where `cryptography` stops (gotcha 6).

`cryptography` parses a request for one certificate and builds a response with one SingleResponse;
a request naming several certificates is parsed here with pyasn1, and its answer's ResponseData is
encoded here for the CA to sign.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ, useful
from pyasn1_alt_modules import rfc5280, rfc6960

from mpki.domain import InvalidRequest

NONCE_OID = "1.3.6.1.5.5.7.48.1.2"
HASH_OIDS = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
HASH_OID_OF = {name: oid for oid, name in HASH_OIDS.items()}
MAX_CERTIFICATES_PER_REQUEST = 100


@dataclass(frozen=True, slots=True)
class CertId:
    """A CertID as the client sent it; the response must echo it exactly."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int


@dataclass(frozen=True, slots=True)
class OcspRequestInfo:
    cert_ids: tuple[CertId, ...]
    nonce: bytes | None


@dataclass(frozen=True, slots=True)
class SingleStatus:
    """One certificate's answer: good, revoked (with time and reason code) or unknown."""

    cert_id: CertId
    status: str
    this_update: dt.datetime
    next_update: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: int | None = None


def parse_request_pyasn1(der: bytes) -> OcspRequestInfo:
    """Parse any OCSPRequest (one or many certificates); InvalidRequest if it is not exactly DER of one."""
    try:
        request, rest = decoder.decode(der, asn1Spec=rfc6960.OCSPRequest())
    except (PyAsn1Error, ValueError, TypeError) as error:
        # pyasn1 raises some errors with an empty message (b"garbage" does): name the error then.
        first_line = next(iter(str(error).splitlines()), "") or type(error).__name__
        raise InvalidRequest(f"not an OCSP request: {first_line[:120]}") from None
    if rest:
        raise InvalidRequest("trailing bytes after the OCSP request")
    tbs = request["tbsRequest"]
    if int(tbs["version"]) != 0:
        raise InvalidRequest("unsupported OCSP request version")
    items = tbs["requestList"]
    if len(items) == 0:
        raise InvalidRequest("the OCSP request names no certificate")
    if len(items) > MAX_CERTIFICATES_PER_REQUEST:
        raise InvalidRequest(f"at most {MAX_CERTIFICATES_PER_REQUEST} certificates per OCSP request")
    ids = []
    for item in items:
        cert_id = item["reqCert"]
        oid = str(cert_id["hashAlgorithm"]["algorithm"])
        if oid not in HASH_OIDS:
            raise InvalidRequest(f"unsupported CertID hash algorithm {oid}")
        ids.append(
            CertId(
                HASH_OIDS[oid],
                bytes(cert_id["issuerNameHash"]),
                bytes(cert_id["issuerKeyHash"]),
                int(cert_id["serialNumber"]),
            )
        )
    nonce = None
    if tbs["requestExtensions"].isValue:
        for extension in tbs["requestExtensions"]:
            if str(extension["extnID"]) == NONCE_OID:
                nonce = unwrap_nonce(bytes(extension["extnValue"]))
    return OcspRequestInfo(tuple(ids), nonce)


def unwrap_nonce(extn_value: bytes) -> bytes:
    """The nonce inside its extension value (an OCTET STRING, RFC 8954); 1 to 32 octets."""
    try:
        value, rest = decoder.decode(extn_value, asn1Spec=univ.OctetString())
    except PyAsn1Error:
        raise InvalidRequest("the OCSP nonce is not an OCTET STRING") from None
    if rest:
        raise InvalidRequest("trailing bytes after the OCSP nonce")
    nonce = bytes(value)
    check_nonce(nonce)
    return nonce


def check_nonce(nonce: bytes) -> None:
    if not 1 <= len(nonce) <= 32:
        raise InvalidRequest("an OCSP nonce has 1 to 32 octets (RFC 8954)")


def _generalized(moment: dt.datetime) -> useful.GeneralizedTime:
    return useful.GeneralizedTime(moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ"))


def _single(answer: SingleStatus) -> rfc6960.SingleResponse:
    single = rfc6960.SingleResponse()
    cert_id = single["certID"]
    cert_id["hashAlgorithm"]["algorithm"] = univ.ObjectIdentifier(HASH_OID_OF[answer.cert_id.hash_algorithm])
    cert_id["hashAlgorithm"]["parameters"] = univ.Null("")
    cert_id["issuerNameHash"] = answer.cert_id.issuer_name_hash
    cert_id["issuerKeyHash"] = answer.cert_id.issuer_key_hash
    cert_id["serialNumber"] = answer.cert_id.serial
    status = single["certStatus"]
    if answer.status == "good":
        status["good"] = status["good"].clone("")
    elif answer.status == "revoked":
        assert answer.revoked_at is not None
        revoked = status["revoked"]
        revoked["revocationTime"] = _generalized(answer.revoked_at)
        if answer.reason:
            revoked["revocationReason"] = revoked["revocationReason"].clone(answer.reason)
    else:
        status["unknown"] = status["unknown"].clone("")
    single["thisUpdate"] = _generalized(answer.this_update)
    single["nextUpdate"] = single["nextUpdate"].clone(_generalized(answer.next_update))
    return single


def encode_response_data(
    responder_key_hash: bytes, produced_at: dt.datetime, answers: list[SingleStatus], nonce: bytes | None
) -> bytes:
    """DER of ResponseData (responder by key hash), ready to be signed."""
    data = rfc6960.ResponseData()
    data["responderID"]["byKey"] = data["responderID"]["byKey"].clone(responder_key_hash)
    data["producedAt"] = _generalized(produced_at)
    for answer in answers:
        data["responses"].append(_single(answer))
    if nonce is not None:
        extension = rfc5280.Extension()
        extension["extnID"] = univ.ObjectIdentifier(NONCE_OID)
        extension["extnValue"] = encoder.encode(univ.OctetString(nonce))
        data["responseExtensions"].append(extension)
    return bytes(encoder.encode(data))


def encode_basic_response(
    response_data: bytes, signature_algorithm: bytes, signature: bytes, certificates: list[bytes]
) -> bytes:
    """The complete OCSPResponse (successful, id-pkix-ocsp-basic) around a signed ResponseData."""
    basic = rfc6960.BasicOCSPResponse()
    basic["tbsResponseData"] = decoder.decode(response_data, asn1Spec=rfc6960.ResponseData())[0]
    basic["signatureAlgorithm"] = decoder.decode(signature_algorithm, asn1Spec=rfc5280.AlgorithmIdentifier())[0]
    basic["signature"] = univ.BitString.fromOctetString(signature)
    for certificate in certificates:
        basic["certs"].append(decoder.decode(certificate, asn1Spec=rfc5280.Certificate())[0])
    response = rfc6960.OCSPResponse()
    response["responseStatus"] = rfc6960.OCSPResponseStatus("successful")
    response["responseBytes"]["responseType"] = rfc6960.id_pkix_ocsp_basic
    response["responseBytes"]["response"] = encoder.encode(basic)
    return bytes(encoder.encode(response))
