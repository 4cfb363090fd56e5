"""CRL encoding and signing, streamed: entries are written as DER as they arrive.

`cryptography`'s CRL builder needs one Python object per entry (gotcha 5: quadratic when added one by
one, and about a kilobyte each even when passed as a list). A CRL of 10^6 entries is built here from
pre-encoded pieces in one pass, so memory is a small multiple of the CRL's own size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from mpki.asn1.certificate import subject_der
from mpki.asn1.der import encode_length, encode_oid, tlv
from mpki.ca.signing import signature_hash

_SEQ = 0x30
_REASON_OID = tlv(0x06, encode_oid("2.5.29.21"))
_ECDSA_SHA256 = tlv(_SEQ, tlv(0x06, encode_oid("1.2.840.10045.4.3.2")))
_ECDSA_SHA384 = tlv(_SEQ, tlv(0x06, encode_oid("1.2.840.10045.4.3.3")))
_RSA_SHA256 = tlv(_SEQ, tlv(0x06, encode_oid("1.2.840.113549.1.1.11")) + b"\x05\x00")
_VERSION_2 = b"\x02\x01\x01"


class CrlScope:
    """Which certificates a CRL covers (RFC 5280 5.2.5 onlyContainsUserCerts / onlyContainsCACerts)."""

    USER = "user"
    CA = "ca"


@dataclass(frozen=True, slots=True)
class CrlSpec:
    """Everything about one CRL except its entries."""

    issuer: x509.Certificate
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    scope: str
    distribution_point: str | None = None  # the IDP's URI, when the CA's certificates carry a matching CDP
    delta_base: int | None = None  # set for a delta CRL: the base CRL's number
    freshest: str | None = None  # where the delta CRL is (full CRLs only)


def encode_time(moment: dt.datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)."""
    utc = moment.astimezone(dt.UTC)
    if 1950 <= utc.year < 2050:
        return tlv(0x17, utc.strftime("%y%m%d%H%M%SZ").encode())
    return tlv(0x18, utc.strftime("%Y%m%d%H%M%SZ").encode())


def encode_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True) if value else b"\x00"
    return tlv(0x02, body)


def _reason_extensions(reason: int) -> bytes:
    """crlEntryExtensions holding only reasonCode; none for unspecified (RFC 5280 5.3.1: SHOULD be absent)."""
    if reason == 0:
        return b""
    ext = tlv(_SEQ, _REASON_OID + tlv(0x04, tlv(0x0A, bytes([reason]))))
    return tlv(_SEQ, ext)


_REASONS = {code: _reason_extensions(code) for code in (0, 1, 2, 3, 4, 5, 6, 8, 9, 10)}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECONDS_PER_DAY = 86_400


def _date_part(day: int) -> bytes:
    """Tag, length and date digits of the UTCTime or GeneralizedTime for a UTC day counted from 1970-01-01:
    followed by `_clock_part`, exactly what `encode_time` writes for any second of that day."""
    date = _EPOCH + dt.timedelta(days=day)
    if 1950 <= date.year < 2050:
        tag, digits = 0x17, date.strftime("%y%m%d").encode()
    else:
        tag, digits = 0x18, date.strftime("%Y%m%d").encode()
    return bytes([tag]) + encode_length(len(digits) + 7) + digits


def _clock_part(second: int) -> bytes:
    hours, rest = divmod(second, 3600)
    return b"%02d%02d%02dZ" % (hours, rest // 60, rest % 60)


def encode_entries(entries: Iterable[tuple[int, dt.datetime, int]]) -> tuple[bytearray, int]:
    """The revokedCertificates contents from (serial, revocation time, reason) and how many there were.

    One pass, under a microsecond an entry: a revocation time in UTC (as the database returns them) is split
    into its day and second of the day; each day's date digits are encoded once and each second of the day
    once (together the same bytes as `encode_time(moment.replace(microsecond=0))`); the INTEGER and SEQUENCE
    headers are written in place. A time in another zone, or naive, takes `encode_time`'s own path."""
    body = bytearray()
    days: dict[int, bytes] = {}
    clock: list[bytes | None] = [None] * _SECONDS_PER_DAY
    reasons = _REASONS
    epoch = _EPOCH
    utc = dt.UTC
    count = 0
    for serial, revoked_at, reason in entries:
        time_of_day: bytes | None
        if revoked_at.tzinfo is not utc:  # never from the database; encode_time's own path
            date, time_of_day = encode_time(revoked_at.replace(microsecond=0)), b""
        else:
            offset = revoked_at - epoch
            found = days.get(offset.days)
            if found is None:
                if len(days) > 100_000:
                    days.clear()
                found = days[offset.days] = _date_part(offset.days)
            date = found
            time_of_day = clock[offset.seconds]
            if time_of_day is None:
                time_of_day = clock[offset.seconds] = _clock_part(offset.seconds)
        extension = reasons[reason]
        length = serial.bit_length() // 8 + 1  # encode_integer's length: minimal for non-negative serials
        size = 2 + length + len(date) + len(time_of_day) + len(extension)
        if size < 0x80:
            body += bytes((_SEQ, size, 0x02, length))
            body += serial.to_bytes(length, "big", signed=True)
            body += date
            body += time_of_day
            body += extension
        else:
            entry = encode_integer(serial) + date + time_of_day + extension
            body += bytes([_SEQ]) + encode_length(len(entry)) + entry
        count += 1
    return body, count


def _extension(oid: x509.ObjectIdentifier, value: x509.ExtensionType, critical: bool = False) -> bytes:
    flag = b"\x01\x01\xff" if critical else b""
    return tlv(_SEQ, tlv(0x06, encode_oid(oid.dotted_string)) + flag + tlv(0x04, value.public_bytes()))


def _crl_extensions(spec: CrlSpec) -> bytes:
    ski = spec.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier(ski.digest, None, None)
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(spec.distribution_point)] if spec.distribution_point else None,
        relative_name=None,
        only_contains_user_certs=spec.scope == CrlScope.USER,
        only_contains_ca_certs=spec.scope == CrlScope.CA,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    parts = [
        _extension(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, aki),
        _extension(ExtensionOID.CRL_NUMBER, x509.CRLNumber(spec.number)),
        _extension(ExtensionOID.ISSUING_DISTRIBUTION_POINT, idp, critical=True),
    ]
    if spec.delta_base is not None:
        parts.append(_extension(ExtensionOID.DELTA_CRL_INDICATOR, x509.DeltaCRLIndicator(spec.delta_base), True))
    elif spec.freshest:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(spec.freshest)], None, None, None)
        parts.append(_extension(ExtensionOID.FRESHEST_CRL, x509.FreshestCRL([point])))
    return tlv(0xA0, tlv(_SEQ, b"".join(parts)))


def signature_algorithm_der(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    """The AlgorithmIdentifier DER for what this key signs with (ECDSA with SHA-256/384, or RSA SHA-256)."""
    digest = signature_hash(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _ECDSA_SHA384 if isinstance(digest, hashes.SHA384) else _ECDSA_SHA256
    return _RSA_SHA256


def sign_bytes(key: CertificateIssuerPrivateKeyTypes, data: bytes) -> bytes:
    """Sign a TBS structure the way its AlgorithmIdentifier says."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(signature_hash(key)))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise TypeError(f"unsupported CRL signing key {type(key).__name__}")


def sign_crl(
    spec: CrlSpec, entries: Iterable[tuple[int, dt.datetime, int]], key: CertificateIssuerPrivateKeyTypes
) -> tuple[bytes, int]:
    """The signed CRL's DER and its number of entries. The issuer name is copied from the CA certificate
    byte for byte, so relying parties match it exactly."""
    body, count = encode_entries(entries)
    algorithm = signature_algorithm_der(key)
    pieces = [
        _VERSION_2,
        algorithm,
        subject_der(spec.issuer.public_bytes(Encoding.DER)),
        encode_time(spec.this_update),
        encode_time(spec.next_update),
    ]
    head = b"".join(pieces)
    revoked = bytes([_SEQ]) + encode_length(len(body)) if count else b""
    extensions = _crl_extensions(spec)
    content_length = len(head) + len(revoked) + (len(body) if count else 0) + len(extensions)
    tbs = b"".join([bytes([_SEQ]), encode_length(content_length), head, revoked, body if count else b"", extensions])
    del body
    signature = tlv(0x03, b"\x00" + sign_bytes(key, tbs))
    total = len(tbs) + len(algorithm) + len(signature)
    return b"".join([bytes([_SEQ]), encode_length(total), tbs, algorithm, signature]), count
