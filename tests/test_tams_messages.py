"""TAMP messages (RFC 5934): every type round-trips, signed messages parse and verify with our code and
with `openssl cms`, and malformed, tampered or wrongly signed messages fail with the RFC status code."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ
from pyasn1_alt_modules import rfc5934

from mpki.asn1 import cms
from mpki.asn1.tamp import (
    CMS_CONTENT_CONSTRAINTS_EXT,
    AddAnchor,
    AllModules,
    ApexUpdate,
    ApexUpdateConfirm,
    ChangeAnchor,
    CommunityTarget,
    CommunityUpdate,
    CommunityUpdateConfirm,
    ContentType,
    Extension,
    HardwareModules,
    HardwareTarget,
    Message,
    MsgRef,
    RemoveAnchor,
    SequenceNumber,
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    SerialBlock,
    StatusCode,
    StatusQuery,
    StatusResponse,
    TampDecodeError,
    TampError,
    TampUpdate,
    TampUpdateConfirm,
    Target,
    TrustAnchor,
    UriTarget,
    decode_content_constraints,
    decode_message,
    encode_content_constraints,
    key_identifier,
)
from mpki.keys.interface import KeyAlgorithm
from mpki.keys.software import SoftwareKeyStore
from mpki.tams import (
    TampRefused,
    contingency_extension,
    parse,
    parse_verified,
    public_key_id,
    sign_message,
    unwrap_contingency_key,
    verify,
    wrap_contingency_key,
)
from mpki.tams.contingency import AES256_WRAP_PAD
from tests.support.tams import self_signed_ca, spki

OPENSSL = shutil.which("openssl")


KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
SPKI = spki(KEY)
INFO = TrustAnchor.from_info(
    SPKI,
    key_identifier(SPKI),
    "management",
    (Extension(CMS_CONTENT_CONSTRAINTS_EXT, False, encode_content_constraints((ContentType.UPDATE,))),),
)
CERT = self_signed_ca(KEY, "apex")
CERT_TA = TrustAnchor.from_certificate(CERT.public_bytes(serialization.Encoding.DER))
TBS_TA = TrustAnchor(cms.explicit(1, CERT.tbs_certificate_bytes))
NEW_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renamed")]).public_bytes()
TBS_CHANGE = ChangeAnchor.tbs_cert_change(
    SPKI, serialNumber=cms.integer(7), signature=cms.sequence(cms.oid(cms.ECDSA_SHA384_OID)), subject=NEW_NAME
)
SEQ = (SequenceNumber(b"\x01\x02", 7), SequenceNumber(key_identifier(SPKI), 2**40))
TARGETS: tuple[Target, ...] = (
    AllModules(),
    CommunityTarget(("1.3.6.1.4.1.99999.1", "1.3.6.1.4.1.99999.2")),
    HardwareTarget((HardwareModules("1.3.6.1.4.1.99999.7", (None, b"\x00\x01", SerialBlock(b"\x00", b"\x09"))),)),
    UriTarget("https://tams.example/endpoint"),
)


def _examples() -> list[Message]:
    out: list[Message] = []
    for n, target in enumerate(TARGETS):
        ref = MsgRef(target, n + 1)
        out += [
            StatusQuery(ref),
            StatusQuery(ref, terse=True),
            StatusResponse(
                ref,
                trust_anchors=(CERT_TA, INFO, TBS_TA),
                contin_pub_key_decrypt_alg=AES256_WRAP_PAD,
                communities=("1.2.3",),
                seq_numbers=SEQ,
            ),
            StatusResponse(ref, terse=True, ta_key_ids=(CERT_TA.key_id,), communities=("1.2.3",), uses_apex=False),
            TampUpdate(
                ref,
                (
                    AddAnchor(INFO),
                    AddAnchor(CERT_TA),
                    RemoveAnchor(SPKI),
                    ChangeAnchor.ta_change(SPKI, b"\x09", "new"),
                    TBS_CHANGE,
                ),
                seq_numbers=SEQ,
            ),
            TampUpdate(ref, (RemoveAnchor(SPKI),), terse=True),
            TampUpdateConfirm(ref, (StatusCode.success, StatusCode.apexTAMPAnchor), trust_anchors=(CERT_TA,)),
            TampUpdateConfirm(ref, (StatusCode.success,), trust_anchors=(INFO,), seq_numbers=SEQ, uses_apex=False),
            TampUpdateConfirm(ref, (StatusCode.trustAnchorNotFound,), terse=True),
            ApexUpdate(ref, CERT_TA, clear_trust_anchors=True, clear_communities=False, seq_number=0),
            ApexUpdate(ref, INFO, terse=True),
            ApexUpdateConfirm(ref, StatusCode.success, trust_anchors=(CERT_TA,), communities=("1.2",), seq_numbers=SEQ),
            ApexUpdateConfirm(ref, StatusCode.contingencyPublicKeyDecrypt, terse=True),
            CommunityUpdate(ref, remove=("1.2.3",), add=("1.2.4", "1.2.5")),
            CommunityUpdate(ref, add=("1.2.4",), terse=True),
            CommunityUpdateConfirm(ref, StatusCode.success, communities=("1.2.4",)),
            CommunityUpdateConfirm(ref, StatusCode.communityUpdateFailed, terse=True),
            SequenceNumberAdjust(ref),
            SequenceNumberAdjustConfirm(ref, StatusCode.success),
            TampError(ContentType.UPDATE, StatusCode.signatureFailure, ref),
        ]
    out.append(TampError(cms.SIGNED_DATA_OID, StatusCode.decodeFailure))
    return out


EXAMPLES = _examples()


def test_status_codes_and_content_types_are_the_rfc_module_s() -> None:
    assert {c.name: c.value for c in StatusCode} == dict(rfc5934.StatusCode.namedValues.items())
    oids = {
        ContentType.STATUS_QUERY: rfc5934.id_ct_TAMP_statusQuery,
        ContentType.STATUS_RESPONSE: rfc5934.id_ct_TAMP_statusResponse,
        ContentType.UPDATE: rfc5934.id_ct_TAMP_update,
        ContentType.UPDATE_CONFIRM: rfc5934.id_ct_TAMP_updateConfirm,
        ContentType.APEX_UPDATE: rfc5934.id_ct_TAMP_apexUpdate,
        ContentType.APEX_UPDATE_CONFIRM: rfc5934.id_ct_TAMP_apexUpdateConfirm,
        ContentType.COMMUNITY_UPDATE: rfc5934.id_ct_TAMP_communityUpdate,
        ContentType.COMMUNITY_UPDATE_CONFIRM: rfc5934.id_ct_TAMP_communityUpdateConfirm,
        ContentType.ERROR: rfc5934.id_ct_TAMP_error,
        ContentType.SEQ_NUM_ADJUST: rfc5934.id_ct_TAMP_seqNumAdjust,
        ContentType.SEQ_NUM_ADJUST_CONFIRM: rfc5934.id_ct_TAMP_seqNumAdjustConfirm,
    }
    assert {str(k): str(v) for k, v in oids.items()} == {str(c): str(c) for c in ContentType}


def test_every_message_type_is_covered() -> None:
    assert {m.content_type for m in EXAMPLES} == set(ContentType)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_and_pyasn1_agrees(message: Message) -> None:
    der = message.encode()
    assert decode_message(message.content_type, der) == message
    # pyasn1-alt-modules' own definition decodes it and re-encodes the same octets: the DER is right.
    spec = rfc5934.cmsContentTypesMap[univ.ObjectIdentifier(message.content_type)]
    value, rest = decoder.decode(der, asn1Spec=spec)
    assert rest == b"" and encoder.encode(value) == der


def test_trust_anchor_forms() -> None:
    assert CERT_TA.kind == "certificate" and CERT_TA.public_key_info == SPKI
    assert CERT_TA.key_id == public_key_id(KEY.public_key())
    assert TBS_TA.kind == "tbsCert" and TBS_TA.public_key_info == SPKI and TBS_TA.key_id == CERT_TA.key_id
    assert INFO.kind == "taInfo" and INFO.title == "management" and INFO.public_key_info == SPKI
    ext = INFO.extension(CMS_CONTENT_CONSTRAINTS_EXT)
    assert ext is not None and decode_content_constraints(ext.value) == (ContentType.UPDATE,)
    change = ChangeAnchor.ta_change(SPKI, b"\x09", "new")
    assert change.kind == "taChange" and change.public_key_info == SPKI
    assert change.key_id == b"\x09" and change.title == "new" and change.tbs_fields() == {}
    assert TBS_CHANGE.kind == "tbsCertChange" and TBS_CHANGE.public_key_info == SPKI
    assert TBS_CHANGE.tbs_fields() == {
        "serialNumber": cms.integer(7),
        "signature": cms.sequence(cms.oid(cms.ECDSA_SHA384_OID)),
        "subject": NEW_NAME,
    }
    with pytest.raises(TampDecodeError) as caught:
        TrustAnchor(b"\x30\x00")
    assert caught.value.status is StatusCode.unsupportedTrustAnchorFormat


def test_decode_refusals() -> None:
    der = StatusQuery(MsgRef(AllModules(), 1)).encode()
    with pytest.raises(TampDecodeError) as caught:
        decode_message("1.2.3.4", der)
    assert caught.value.status is StatusCode.unsupportedTAMPMsgType
    with pytest.raises(TampDecodeError) as caught:
        decode_message(ContentType.STATUS_QUERY, der + b"\x00")
    assert caught.value.status is StatusCode.decodeFailure
    v1 = cms.sequence(cms.implicit(0, cms.integer(1)), der[2:])
    with pytest.raises(TampDecodeError) as caught:
        decode_message(ContentType.STATUS_QUERY, v1)
    assert caught.value.status is StatusCode.versionNumberMismatch


@pytest.mark.parametrize("message", EXAMPLES[:20], ids=lambda m: type(m).__name__)
def test_signed_round_trip(message: Message) -> None:
    der = sign_message(message, KEY)
    parsed, signer = parse_verified(der, KEY.public_key())
    assert parsed == message
    assert signer.key_id == public_key_id(KEY.public_key())
    assert signer.digest_algorithm == cms.SHA256_OID and signer.signature_algorithm == cms.ECDSA_SHA256_OID
    assert signer.contingency_key is None and signer.signing_time is None


def test_signing_time_contingency_attribute_and_other_keys() -> None:
    when = dt.datetime(2026, 11, 28, 10, 0, tzinfo=dt.UTC)
    message = ApexUpdate(MsgRef(AllModules(), 3), CERT_TA)
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for key in (KEY, p384, rsa_key):
        der = sign_message(message, key, signing_time=when, contingency_key=b"k" * 32)
        parsed, signer = parse_verified(der, key.public_key())
        assert parsed == message and signer.signing_time == when and signer.contingency_key == b"k" * 32
    _, signer = parse(sign_message(message, p384))
    assert signer.digest_algorithm == cms.SHA384_OID


def test_signing_through_the_keys_room(tmp_path: Path) -> None:
    store = SoftwareKeyStore.create(tmp_path / "keys", "a passphrase for tests")
    info = store.generate("tams-signer", KeyAlgorithm.EC_P256)
    key = store.signing_key(info.key_id)
    message = SequenceNumberAdjust(MsgRef(AllModules(), 10))
    parsed, _ = parse_verified(sign_message(message, key), info.public_key())
    assert parsed == message


def _refusal(der: bytes, key: ec.EllipticCurvePublicKey | None = None) -> StatusCode:
    with pytest.raises(TampRefused) as caught:
        if key is None:
            parse(der)
        else:
            parse_verified(der, key)
    return caught.value.status


def test_verification_refusals() -> None:
    message = StatusQuery(MsgRef(AllModules(), 258))
    der = sign_message(message, KEY)
    content = message.encode()
    at = der.index(content) + len(content) - 1  # the sequence number's last octet: still decodes
    tampered = der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :]
    assert _refusal(tampered, KEY.public_key()) is StatusCode.signatureFailure
    assert _refusal(der, OTHER.public_key()) is StatusCode.signatureFailure
    assert _refusal(b"\x30\x03\x02\x01\x00") is StatusCode.decodeFailure
    data = cms.sequence(cms.oid("1.2.840.113549.1.7.1"), cms.explicit(0, cms.octet_string(b"x")))
    assert _refusal(data) is StatusCode.badContentInfo
    parts = cms.decode_signed_data(der)
    foreign = cms.encode_signed_data(
        cms.SignedParts(**{**_fields(parts), "content_type": "1.2.840.113549.1.7.1"})  # type: ignore[arg-type]
    )
    assert _refusal(foreign) is StatusCode.badSignedAttrs
    unknown = cms.signed_attributes("1.2.3.4", b"\x00" * 32)
    odd = cms.encode_signed_data(
        cms.SignedParts(**{**_fields(parts), "content_type": "1.2.3.4", "signed_attributes": unknown})  # type: ignore[arg-type]
    )
    assert _refusal(odd) is StatusCode.unsupportedTAMPMsgType
    rsa_alg = cms.encode_signed_data(
        cms.SignedParts(**{**_fields(parts), "signature_algorithm": cms.RSA_SHA256_OID})  # type: ignore[arg-type]
    )
    assert _refusal(rsa_alg, KEY.public_key()) is StatusCode.badSignatureAlgorithm
    md5 = cms.encode_signed_data(
        cms.SignedParts(**{**_fields(parts), "digest_algorithm": "1.2.840.113549.2.5"})  # type: ignore[arg-type]
    )
    assert _refusal(md5, KEY.public_key()) is StatusCode.badDigestAlgorithm
    unsigned = cms.sequence(
        cms.oid(cms.SIGNED_DATA_OID),
        cms.explicit(
            0,
            cms.sequence(
                cms.integer(3),
                cms.set_of([]),
                cms.sequence(cms.oid(parts.content_type), cms.explicit(0, cms.octet_string(parts.content))),
                cms.set_of([]),
            ),
        ),
    )
    assert _refusal(unsigned) is StatusCode.missingSignature


def _fields(parts: cms.SignedParts) -> dict[str, object]:
    return {name: getattr(parts, name) for name in cms.SignedParts.__slots__}


def test_contingency_key_wraps_and_unwraps() -> None:
    contingency = ec.generate_private_key(ec.SECP256R1())
    kek = bytes(range(32))
    wrapped = wrap_contingency_key(contingency.public_key(), kek)
    assert wrapped.wrap_algorithm == AES256_WRAP_PAD
    extension = contingency_extension(wrapped)
    assert type(wrapped).decode(extension.value) == wrapped
    assert spki(contingency) == unwrap_contingency_key(wrapped, kek).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for bad_key, status in (
        (bytes(32), StatusCode.contingencyPublicKeyDecrypt),
        (bytes(16), StatusCode.contingencyPublicKeyDecrypt),
    ):
        with pytest.raises(TampRefused) as caught:
            unwrap_contingency_key(wrapped, bad_key)
        assert caught.value.status is status
    with pytest.raises(TampRefused) as caught:
        unwrap_contingency_key(type(wrapped)("2.16.840.1.101.3.4.1.45", wrapped.wrapped), kek)
    assert caught.value.status is StatusCode.unsupportedContinPubKeyDecryptAlg


def _openssl(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL, "openssl is needed"
    return subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, timeout=60)


@pytest.mark.parametrize("message", EXAMPLES[:20], ids=lambda m: type(m).__name__)
def test_openssl_parses_and_verifies(message: Message, tmp_path: Path) -> None:
    certificate = self_signed_ca(KEY, "tams signer")
    (tmp_path / "signer.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "message.der").write_bytes(
        sign_message(message, KEY, signing_time=dt.datetime.now(dt.UTC), contingency_key=b"\x01" * 16)
    )
    printed = _openssl(tmp_path, "cms", "-cmsout", "-print", "-inform", "DER", "-in", "message.der")
    assert printed.returncode == 0, printed.stderr
    assert message.content_type.encode() in printed.stdout
    verified = _openssl(
        tmp_path, "cms", "-verify", "-inform", "DER", "-in", "message.der", "-noverify", "-binary",
        "-certfile", "signer.pem", "-out", "content.der",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert (tmp_path / "content.der").read_bytes() == message.encode()
    # A signature by another key does not verify with openssl either.
    (tmp_path / "other.der").write_bytes(sign_message(message, OTHER, key_id=public_key_id(KEY.public_key())))
    refused = _openssl(
        tmp_path, "cms", "-verify", "-inform", "DER", "-in", "other.der", "-noverify", "-binary",
        "-certfile", "signer.pem", "-out", "other.bin",
    )  # fmt: skip
    assert refused.returncode != 0


def test_verify_accepts_the_parsed_signer_and_a_trust_anchor() -> None:
    message = TampUpdate(MsgRef(AllModules(), 5), (AddAnchor(INFO),))
    der = sign_message(message, KEY)
    _, signer = parse(der)
    verify(signer, KEY.public_key())
    assert key_identifier(SPKI) == signer.key_id
    for anchor in (CERT_TA, TBS_TA, INFO):
        assert parse_verified(der, anchor)[0] == message
