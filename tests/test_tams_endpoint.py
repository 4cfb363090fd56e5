"""The reference trust-anchor store: it applies TAMP messages from its apex and management anchors,
refuses tampered, replayed and wrongly signed ones with the RFC 5934 status codes, replaces its apex
through the contingency key, and keeps its state across a reload."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mpki.asn1.der import tlv
from mpki.asn1.tamp import (
    CMS_CONTENT_CONSTRAINTS_EXT,
    WRAPPED_APEX_CONTIN_KEY_EXT,
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
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    SerialBlock,
    StatusCode,
    StatusQuery,
    StatusResponse,
    TampError,
    TampUpdate,
    TampUpdateConfirm,
    Target,
    TrustAnchor,
    UriTarget,
    encode_content_constraints,
)
from mpki.keys.interface import KeyAlgorithm
from mpki.keys.software import SoftwareKeyStore
from mpki.tams import (
    HardwareIdentity,
    TrustAnchorStore,
    parse_verified,
    public_key_id,
    sign_message,
    wrap_contingency_key,
)
from mpki.tams.contingency import AES256_WRAP_PAD
from tests.support.tams import self_signed_ca, spki

MANAGER_TYPES = (
    ContentType.STATUS_QUERY,
    ContentType.UPDATE,
    ContentType.COMMUNITY_UPDATE,
    ContentType.SEQ_NUM_ADJUST,
)
HW_TYPE = "1.3.6.1.4.1.99999.7"
COMMUNITY = "1.3.6.1.4.1.99999.1.1"


def root_certificate(key: ec.EllipticCurvePrivateKey, name: str, extensions: tuple[Extension, ...] = ()) -> TrustAnchor:
    """A self-signed root, as the CA would make it, carrying any extra extensions as given."""
    unrecognised = [
        (x509.UnrecognizedExtension(x509.ObjectIdentifier(ext.oid), ext.value), ext.critical) for ext in extensions
    ]
    certificate = self_signed_ca(key, name, unrecognised)
    return TrustAnchor.from_certificate(certificate.public_bytes(serialization.Encoding.DER))


def apex_with_contingency(
    name: str,
) -> tuple[ec.EllipticCurvePrivateKey, TrustAnchor, ec.EllipticCurvePrivateKey, bytes]:
    """(apex key, apex root certificate, contingency key, the AES key that unwraps it from the root)."""
    apex_key = ec.generate_private_key(ec.SECP256R1())
    contingency_key = ec.generate_private_key(ec.SECP256R1())
    decrypt_key = bytes(range(32)) if name == "apex" else bytes(range(100, 132))
    wrapped = wrap_contingency_key(contingency_key.public_key(), decrypt_key)
    extension = Extension(WRAPPED_APEX_CONTIN_KEY_EXT, False, wrapped.encode())
    return apex_key, root_certificate(apex_key, name, (extension,)), contingency_key, decrypt_key


def management_anchor(key: ec.EllipticCurvePrivateKey, title: str, types: tuple[str, ...]) -> TrustAnchor:
    constraints = Extension(CMS_CONTENT_CONSTRAINTS_EXT, False, encode_content_constraints(types))
    return TrustAnchor.from_info(spki(key), public_key_id(key.public_key()), title, (constraints,))


@dataclass
class Scene:
    path: Path
    device: ec.EllipticCurvePrivateKey
    store: TrustAnchorStore
    apex_key: ec.EllipticCurvePrivateKey
    apex: TrustAnchor
    contingency: ec.EllipticCurvePrivateKey
    decrypt_key: bytes
    manager: ec.EllipticCurvePrivateKey
    manager_ta: TrustAnchor
    seq: int = 0

    def ref(self, target: Target | None = None) -> MsgRef:
        self.seq += 1
        return MsgRef(target or AllModules(), self.seq)

    def send(self, message: Message, key: ec.EllipticCurvePrivateKey | None = None, **options: object) -> Message:
        """Sign `message` (by the manager unless told), process it, and read the store's signed answer."""
        der = sign_message(message, key or self.manager, **options)  # type: ignore[arg-type]
        return self.answer(self.store.process(der))

    def answer(self, der: bytes) -> Message:
        answer, signer = parse_verified(der, self.device.public_key())
        assert signer.key_id == public_key_id(self.device.public_key())
        return answer

    def status(self) -> StatusResponse:
        response = self.send(StatusQuery(self.ref()))
        assert isinstance(response, StatusResponse)
        return response


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    device = ec.generate_private_key(ec.SECP256R1())
    apex_key, apex, contingency, decrypt_key = apex_with_contingency("apex")
    manager = ec.generate_private_key(ec.SECP256R1())
    manager_ta = management_anchor(manager, "TAMS manager", MANAGER_TYPES)
    path = tmp_path / "endpoint" / "trust-anchors.json"
    store = TrustAnchorStore.initialise(
        path,
        device,
        apex,
        management=[(manager_ta, MANAGER_TYPES)],
        communities=[COMMUNITY],
        hardware=HardwareIdentity(HW_TYPE, bytes.fromhex("0011223344556677")),
    )
    return Scene(path, device, store, apex_key, apex, contingency, decrypt_key, manager, manager_ta)


def _error(answer: Message) -> StatusCode:
    assert isinstance(answer, TampError), answer
    return answer.status


def test_status_lists_the_apex_first_and_the_contingency_algorithm(scene: Scene) -> None:
    response = scene.status()
    assert response.trust_anchors == (scene.apex, scene.manager_ta)
    assert response.contin_pub_key_decrypt_alg == AES256_WRAP_PAD
    assert response.communities == (COMMUNITY,)
    assert response.seq_numbers is not None
    assert {(n.key_id, n.seq_num) for n in response.seq_numbers} == {(scene.manager_ta.key_id, scene.seq)}
    terse = scene.send(StatusQuery(scene.ref(), terse=True))
    assert isinstance(terse, StatusResponse) and terse.ta_key_ids == (scene.apex.key_id, scene.manager_ta.key_id)


def test_update_adds_a_trust_anchor_that_the_status_then_lists(scene: Scene) -> None:
    new_root = root_certificate(ec.generate_private_key(ec.SECP256R1()), "new root")
    confirm = scene.send(TampUpdate(scene.ref(), (AddAnchor(new_root),)))
    assert isinstance(confirm, TampUpdateConfirm)
    assert confirm.statuses == (StatusCode.success,)
    assert new_root in confirm.trust_anchors
    assert new_root in scene.status().trust_anchors


def test_identity_anchor_may_not_sign_tamp(scene: Scene) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    scene.send(TampUpdate(scene.ref(), (AddAnchor(root_certificate(key, "identity")),)))
    assert _error(scene.send(StatusQuery(scene.ref()), key=key)) is StatusCode.notAuthorized


def test_remove_and_change(scene: Scene) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    other_ta = management_anchor(other, "second manager", (ContentType.STATUS_QUERY,))
    scene.send(TampUpdate(scene.ref(), (AddAnchor(other_ta),)))
    confirm = scene.send(TampUpdate(scene.ref(), (ChangeAnchor.ta_change(spki(other), title="renamed"),)))
    assert isinstance(confirm, TampUpdateConfirm) and confirm.statuses == (StatusCode.success,)
    (changed,) = [a for a in scene.status().trust_anchors if a.public_key_info == spki(other)]
    assert changed.title == "renamed" and changed.key_id == other_ta.key_id
    confirm = scene.send(TampUpdate(scene.ref(), (RemoveAnchor(spki(other)),)))
    assert isinstance(confirm, TampUpdateConfirm) and confirm.statuses == (StatusCode.success,)
    assert spki(other) not in {a.public_key_info for a in scene.status().trust_anchors}
    assert _error(scene.send(StatusQuery(MsgRef(AllModules(), 99)), key=other)) is StatusCode.noTrustAnchor


def test_update_is_all_or_nothing(scene: Scene) -> None:
    new_root = root_certificate(ec.generate_private_key(ec.SECP256R1()), "new root")
    stranger = ec.generate_private_key(ec.SECP256R1())
    confirm = scene.send(
        TampUpdate(
            scene.ref(),
            (AddAnchor(new_root), RemoveAnchor(scene.apex.public_key_info), RemoveAnchor(spki(stranger))),
        )
    )
    assert isinstance(confirm, TampUpdateConfirm)
    assert confirm.statuses == (StatusCode.success, StatusCode.apexTAMPAnchor, StatusCode.trustAnchorNotFound)
    assert new_root not in scene.status().trust_anchors
    confirm = scene.send(TampUpdate(scene.ref(), (AddAnchor(scene.apex),)))
    assert isinstance(confirm, TampUpdateConfirm) and confirm.statuses == (StatusCode.improperTAAddition,)


def test_tampered_message_is_refused(scene: Scene) -> None:
    message = TampUpdate(scene.ref(), (RemoveAnchor(spki(scene.manager)),))
    der = sign_message(message, scene.manager)
    content = message.encode()
    at = der.index(content) + len(content) - 5  # inside the SubjectPublicKeyInfo's key: still decodes
    tampered = der[:at] + bytes([der[at] ^ 0xFF]) + der[at + 1 :]
    assert _error(scene.answer(scene.store.process(tampered))) is StatusCode.signatureFailure
    assert _error(scene.answer(scene.store.process(b"\x30\x03\x02\x01\x00"))) is StatusCode.decodeFailure
    assert scene.status().trust_anchors == (scene.apex, scene.manager_ta)


def test_replayed_message_is_refused(scene: Scene) -> None:
    new_root = root_certificate(ec.generate_private_key(ec.SECP256R1()), "new root")
    der = sign_message(TampUpdate(MsgRef(AllModules(), 50), (AddAnchor(new_root),)), scene.manager)
    assert isinstance(scene.answer(scene.store.process(der)), TampUpdateConfirm)
    assert _error(scene.answer(scene.store.process(der))) is StatusCode.seqNumFailure
    older = sign_message(StatusQuery(MsgRef(AllModules(), 49)), scene.manager)
    refused = scene.answer(scene.store.process(older))
    assert isinstance(refused, TampError) and refused.status is StatusCode.seqNumFailure
    assert refused.msg_type == ContentType.STATUS_QUERY and refused.msg_ref == MsgRef(AllModules(), 49)


def test_wrongly_signed_messages_are_refused(scene: Scene) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert _error(scene.send(StatusQuery(scene.ref()), key=stranger)) is StatusCode.noTrustAnchor
    # A stranger claiming to be the manager: the manager's key does not verify the signature.
    forged = sign_message(StatusQuery(scene.ref()), stranger, key_id=scene.manager_ta.key_id)
    assert _error(scene.answer(scene.store.process(forged))) is StatusCode.signatureFailure
    # The manager may not replace the apex: that is the apex's (or its contingency key's) alone.
    new_apex = root_certificate(stranger, "usurper")
    assert _error(scene.send(ApexUpdate(scene.ref(), new_apex))) is StatusCode.notAuthorized
    # A store takes requests, not answers.
    confirm = SequenceNumberAdjustConfirm(scene.ref(), StatusCode.success)
    assert _error(scene.send(confirm)) is StatusCode.unsupportedTAMPMsgType


def test_targets(scene: Scene) -> None:
    elsewhere = CommunityTarget(("1.3.6.1.4.1.99999.1.2",))
    assert _error(scene.send(StatusQuery(scene.ref(elsewhere)))) is StatusCode.incorrectTarget
    assert isinstance(scene.send(StatusQuery(scene.ref(CommunityTarget((COMMUNITY,))))), StatusResponse)
    block = HardwareTarget((HardwareModules(HW_TYPE, (SerialBlock(bytes(8), bytes.fromhex("00ff" + "00" * 6)),)),))
    assert isinstance(scene.send(StatusQuery(scene.ref(block))), StatusResponse)
    other_type = HardwareTarget((HardwareModules("1.3.6.1.4.1.99999.8", (None,)),))
    assert _error(scene.send(StatusQuery(scene.ref(other_type)))) is StatusCode.incorrectTarget
    uri = UriTarget("https://device.example/")
    assert _error(scene.send(StatusQuery(scene.ref(uri)))) is StatusCode.unsupportedTargetIdentifier


def test_community_update(scene: Scene) -> None:
    added = "1.3.6.1.4.1.99999.1.2"
    confirm = scene.send(CommunityUpdate(scene.ref(), remove=(COMMUNITY,), add=(added,)))
    assert isinstance(confirm, CommunityUpdateConfirm)
    assert confirm.status is StatusCode.success and confirm.communities == (added,)
    failed = scene.send(CommunityUpdate(scene.ref(), remove=(COMMUNITY,)))
    assert isinstance(failed, CommunityUpdateConfirm) and failed.status is StatusCode.communityUpdateFailed
    assert scene.status().communities == (added,)


def test_sequence_number_adjust(scene: Scene) -> None:
    confirm = scene.send(SequenceNumberAdjust(MsgRef(AllModules(), 1000)))
    assert isinstance(confirm, SequenceNumberAdjustConfirm) and confirm.status is StatusCode.success
    assert _error(scene.send(StatusQuery(MsgRef(AllModules(), 999)))) is StatusCode.seqNumFailure
    assert isinstance(scene.send(StatusQuery(MsgRef(AllModules(), 1001))), StatusResponse)


def test_apex_replaces_itself_and_its_old_key_is_refused(scene: Scene) -> None:
    new_key, new_apex, _, _ = apex_with_contingency("second apex")
    confirm = scene.send(ApexUpdate(scene.ref(), new_apex, seq_number=10), key=scene.apex_key)
    assert isinstance(confirm, ApexUpdateConfirm) and confirm.status is StatusCode.success
    assert confirm.trust_anchors == (new_apex, scene.manager_ta)
    assert _error(scene.send(StatusQuery(scene.ref()), key=scene.apex_key)) is StatusCode.noTrustAnchor
    assert _error(scene.send(StatusQuery(MsgRef(AllModules(), 10)), key=new_key)) is StatusCode.seqNumFailure
    assert isinstance(scene.send(StatusQuery(MsgRef(AllModules(), 11)), key=new_key), StatusResponse)


def test_apex_recovery_through_the_contingency_key(scene: Scene) -> None:
    new_key, new_apex, _, _ = apex_with_contingency("recovered apex")
    update = ApexUpdate(scene.ref(), new_apex, clear_trust_anchors=True, clear_communities=False)
    # Without the right unwrap key the contingency public key cannot be recovered.
    wrong = scene.send(update, key=scene.contingency, contingency_key=bytes(32))
    assert _error(wrong) is StatusCode.contingencyPublicKeyDecrypt
    # Without any unwrap key the contingency key is just a stranger.
    assert _error(scene.send(update, key=scene.contingency)) is StatusCode.noTrustAnchor
    der = sign_message(update, scene.contingency, contingency_key=scene.decrypt_key)
    confirm = scene.answer(scene.store.process(der))
    assert isinstance(confirm, ApexUpdateConfirm) and confirm.status is StatusCode.success
    assert confirm.trust_anchors == (new_apex,)  # clearTrustAnchors removed the manager too
    # The replaced apex is refused from now on, and the contingency message cannot be replayed.
    assert _error(scene.send(StatusQuery(scene.ref()), key=scene.apex_key)) is StatusCode.noTrustAnchor
    assert _error(scene.answer(scene.store.process(der))) is StatusCode.contingencyPublicKeyDecrypt
    assert _error(scene.send(StatusQuery(scene.ref()))) is StatusCode.noTrustAnchor  # the cleared manager
    response = scene.send(StatusQuery(scene.ref()), key=new_key)
    assert isinstance(response, StatusResponse) and response.trust_anchors == (new_apex,)


def test_manager_may_not_use_the_contingency_path(scene: Scene) -> None:
    usurper = ec.generate_private_key(ec.SECP256R1())
    update = ApexUpdate(scene.ref(), root_certificate(usurper, "usurper"))
    answer = scene.send(update, key=usurper, contingency_key=scene.decrypt_key)
    assert _error(answer) is StatusCode.badSignerInfo
    posing = public_key_id(scene.contingency.public_key())
    answer = scene.send(update, key=usurper, contingency_key=scene.decrypt_key, key_id=posing)
    assert _error(answer) is StatusCode.signatureFailure
    assert scene.status().trust_anchors[0] == scene.apex


def test_state_survives_a_reload(scene: Scene) -> None:
    new_root = root_certificate(ec.generate_private_key(ec.SECP256R1()), "new root")
    der = sign_message(TampUpdate(scene.ref(), (AddAnchor(new_root),)), scene.manager)
    scene.answer(scene.store.process(der))
    before = scene.store.state.to_json()
    assert json.loads(scene.path.read_text()) == before
    assert not list(scene.path.parent.glob("*.tmp"))
    scene.store = TrustAnchorStore(scene.path, scene.device)
    assert scene.store.state.to_json() == before
    assert _error(scene.answer(scene.store.process(der))) is StatusCode.seqNumFailure
    assert new_root in scene.status().trust_anchors


def test_initialise_refuses_to_overwrite(scene: Scene) -> None:
    with pytest.raises(FileExistsError):
        TrustAnchorStore.initialise(scene.path, scene.device, scene.apex)


def test_every_damaged_octet_is_answered_never_raised(scene: Scene) -> None:
    """Flip octets all through an update and a contingency apex update: the store answers every one,
    and accepts none (every field is either signed or checked)."""
    new_root = root_certificate(ec.generate_private_key(ec.SECP256R1()), "new root")
    messages = [
        sign_message(TampUpdate(scene.ref(), (AddAnchor(new_root),)), scene.manager),
        sign_message(ApexUpdate(scene.ref(), new_root), scene.contingency, contingency_key=scene.decrypt_key),
    ]
    for n, der in enumerate(messages):
        for at in range(n, len(der), 4):  # every fourth octet keeps the test quick
            answer = scene.answer(scene.store.process(der[:at] + bytes([der[at] ^ 0xFF]) + der[at + 1 :]))
            assert isinstance(answer, TampError), at


def test_the_store_signs_through_the_keys_room(tmp_path: Path) -> None:
    keystore = SoftwareKeyStore.create(tmp_path / "keys", "a passphrase for tests")
    info = keystore.generate("device", KeyAlgorithm.EC_P256)
    apex_key = ec.generate_private_key(ec.SECP256R1())
    apex = root_certificate(apex_key, "apex")
    store = TrustAnchorStore.initialise(tmp_path / "store.json", keystore.signing_key(info.key_id), apex)
    answer = store.process(sign_message(StatusQuery(MsgRef(AllModules(), 1)), apex_key))
    response, signer = parse_verified(answer, info.public_key())
    assert isinstance(response, StatusResponse) and response.trust_anchors == (apex,)
    assert response.contin_pub_key_decrypt_alg is None
    assert signer.key_id == public_key_id(info.public_key())


def test_tbs_certificate_anchor_takes_a_tbs_cert_change(scene: Scene) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = x509.load_der_x509_certificate(root_certificate(key, "tbs anchor").der)
    anchor = TrustAnchor(tlv(0xA1, certificate.tbs_certificate_bytes))  # [1] TBSCertificate
    scene.send(TampUpdate(scene.ref(), (AddAnchor(anchor),)))
    renamed = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renamed anchor")])
    change = ChangeAnchor.tbs_cert_change(spki(key), subject=renamed.public_bytes())
    confirm = scene.send(TampUpdate(scene.ref(), (change,)))
    assert isinstance(confirm, TampUpdateConfirm) and confirm.statuses == (StatusCode.success,)
    (changed,) = [a for a in scene.status().trust_anchors if a.public_key_info == spki(key)]
    assert changed.kind == "tbsCert" and changed != anchor
    # Only the subject changed: the issuer still carries the old name.
    assert changed.der.count(renamed.public_bytes()) == 1 and changed.der.count(b"tbs anchor") == 1
    # A certificate anchor cannot be changed in place.
    root = root_certificate(ec.generate_private_key(ec.SECP256R1()), "signed root")
    scene.send(TampUpdate(scene.ref(), (AddAnchor(root),)))
    change = ChangeAnchor.tbs_cert_change(root.public_key_info, subject=renamed.public_bytes())
    confirm = scene.send(TampUpdate(scene.ref(), (change,)))
    assert isinstance(confirm, TampUpdateConfirm) and confirm.statuses == (StatusCode.improperTAChange,)


def test_two_handles_on_one_store_share_its_sequence_numbers(scene: Scene) -> None:
    """A second process opened before a message was accepted still refuses its replay."""
    second = TrustAnchorStore(scene.path, scene.device)
    der = sign_message(StatusQuery(scene.ref()), scene.manager)
    assert isinstance(scene.answer(scene.store.process(der)), StatusResponse)
    assert _error(scene.answer(second.process(der))) is StatusCode.seqNumFailure
