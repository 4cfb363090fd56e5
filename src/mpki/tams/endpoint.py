"""The reference trust-anchor store: what a device holds, and how it answers a TAMP message.

`process(der)` checks a signed message in RFC 5934 order (form, signer, signature, authorisation,
target, sequence number), applies it, saves the state and answers with the signed confirm or response,
or with a signed TAMPError carrying the status code. A store never raises on a bad message: it answers.

The apex trust anchor signs anything; its contingency key signs only a TAMPApexUpdate, and only when
the message carries the symmetric key that unwraps the contingency public key from the apex's
id-pe-wrappedApexContinKey extension. Other anchors sign the TAMP messages their record permits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from mpki.asn1.cms import SIGNED_DATA_OID
from mpki.asn1.tamp import (
    WRAPPED_APEX_CONTIN_KEY_EXT,
    ApexContingencyKey,
    ApexUpdate,
    ApexUpdateConfirm,
    CommunityUpdate,
    CommunityUpdateConfirm,
    Message,
    SequenceNumber,
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    StatusCode,
    StatusQuery,
    StatusResponse,
    TampDecodeError,
    TampError,
    TampUpdate,
    TampUpdateConfirm,
    TrustAnchor,
)
from mpki.domain import InvalidRequest
from mpki.tams.contingency import unwrap_contingency_key
from mpki.tams.errors import TampRefused
from mpki.tams.signing import SignerInfo, anchor_public_key, parse, public_key_id, sign_message, verify
from mpki.tams.state import AnchorRecord, HardwareIdentity, StoreState, load_state, locked, save_state
from mpki.tams.targets import check_target
from mpki.tams.updates import MANAGEMENT_TYPES, apply_updates, supported_key

Request = StatusQuery | TampUpdate | ApexUpdate | CommunityUpdate | SequenceNumberAdjust
_REQUESTS = (StatusQuery, TampUpdate, ApexUpdate, CommunityUpdate, SequenceNumberAdjust)


@dataclass(frozen=True, slots=True)
class Authority:
    """The key a message was verified with: its id (for sequence numbers) and its role."""

    key_id: bytes
    is_apex: bool
    is_contingency: bool = False


class TrustAnchorStore:
    """A TAMP endpoint whose state lives in one JSON file; it signs its answers with `signing_key`."""

    def __init__(self, path: Path, signing_key: CertificateIssuerPrivateKeyTypes, key_id: bytes | None = None) -> None:
        self.path = path
        self._key = signing_key
        public_key = signing_key.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise InvalidRequest("a trust-anchor store signs with an EC or RSA key")
        self._key_id = key_id if key_id is not None else public_key_id(public_key)
        self.state = load_state(path)

    @classmethod
    def initialise(
        cls,
        path: Path,
        signing_key: CertificateIssuerPrivateKeyTypes,
        apex: TrustAnchor,
        management: Iterable[tuple[TrustAnchor, Iterable[str]]] = (),
        communities: Iterable[str] = (),
        hardware: HardwareIdentity | None = None,
        key_id: bytes | None = None,
    ) -> TrustAnchorStore:
        """A new store trusting `apex`, and each management anchor for the TAMP content types given with it."""
        if path.exists():
            raise FileExistsError(f"a trust-anchor store already exists at {path}")
        if not supported_key(apex):
            raise TampRefused(StatusCode.unsupportedTAAlgorithm, "the apex trust anchor's key is not supported")
        anchors = [AnchorRecord(anchor, frozenset(types) & MANAGEMENT_TYPES) for anchor, types in management]
        save_state(path, StoreState(apex, anchors, list(dict.fromkeys(communities)), {}, hardware))
        return cls(path, signing_key, key_id)

    def reload(self) -> None:
        self.state = load_state(self.path)

    # --- processing ---------------------------------------------------------------------------------

    def process(self, der: bytes) -> bytes:
        """Answer one signed TAMP message with a signed confirm, response or TAMPError. The state is
        re-read under the file lock, so that several processes may share one store."""
        with locked(self.path):
            self.state = load_state(self.path)
            return self._process(der)

    def _process(self, der: bytes) -> bytes:
        try:
            message, signer = parse(der)
        except TampRefused as refused:
            return self._error(refused, refused.msg_type or SIGNED_DATA_OID)
        if not isinstance(message, _REQUESTS):
            answer_refused = TampRefused(StatusCode.unsupportedTAMPMsgType, "a store accepts requests, not answers")
            return self._error(answer_refused, message.content_type)
        try:
            authority = self._authenticate(message, signer)
            ref = message.query if isinstance(message, StatusQuery) else message.msg_ref
            check_target(ref.target, self.state.communities, self.state.hardware)
            self._check_sequence(authority.key_id, ref.seq_num)
        except TampRefused as refused:
            return self._error(refused, message.content_type, message)
        state = self.state.copy()
        state.seq_numbers[authority.key_id] = ref.seq_num
        answer = self._apply(state, message)
        save_state(self.path, state)
        self.state = state
        return sign_message(answer, self._key, key_id=self._key_id)

    def _error(self, refused: TampRefused, msg_type: str, message: Request | None = None) -> bytes:
        ref = None
        if message is not None:
            ref = message.query if isinstance(message, StatusQuery) else message.msg_ref
        return sign_message(TampError(msg_type, refused.status, ref), self._key, key_id=self._key_id)

    def _authenticate(self, message: Request, signer: SignerInfo) -> Authority:
        state = self.state
        if signer.key_id == state.apex.key_id:
            verify(signer, anchor_public_key(state.apex))
            return Authority(signer.key_id, is_apex=True)
        for record in state.anchors:
            if record.anchor.key_id == signer.key_id:
                verify(signer, anchor_public_key(record.anchor))
                if message.content_type not in record.content_types:
                    raise TampRefused(StatusCode.notAuthorized, "the signer may not sign this message type")
                return Authority(signer.key_id, is_apex=False)
        if isinstance(message, ApexUpdate) and signer.contingency_key is not None:
            return self._authenticate_contingency(signer)
        raise TampRefused(StatusCode.noTrustAnchor, "the signer is not a trust anchor of this store")

    def _authenticate_contingency(self, signer: SignerInfo) -> Authority:
        """Unwrap the apex's contingency public key with the message's decrypt key, then verify with it."""
        extension = self.state.apex.extension(WRAPPED_APEX_CONTIN_KEY_EXT)
        if extension is None:
            raise TampRefused(StatusCode.contingencyPublicKeyDecrypt, "the apex has no contingency key")
        assert signer.contingency_key is not None
        try:
            wrapped = ApexContingencyKey.decode(extension.value)
        except TampDecodeError as exc:
            raise TampRefused(exc.status, str(exc)) from None
        public_key = unwrap_contingency_key(wrapped, signer.contingency_key)
        # The store learns the contingency key only now: its signer must be named by the key's own
        # identifier (RFC 5280 method 1), so that the SignerInfo is bound to the key that signed.
        if signer.key_id != public_key_id(public_key):
            raise TampRefused(StatusCode.badSignerInfo, "the signer is not named by the contingency key's identifier")
        verify(signer, public_key)
        return Authority(signer.key_id, is_apex=False, is_contingency=True)

    def _check_sequence(self, key_id: bytes, seq_num: int) -> None:
        last = self.state.seq_numbers.get(key_id)
        if last is not None and seq_num <= last:
            raise TampRefused(StatusCode.seqNumFailure, f"sequence number {seq_num} is not above {last}")

    def _apply(self, state: StoreState, message: Request) -> Message:
        if isinstance(message, StatusQuery):
            return self._status(state, message)
        if isinstance(message, TampUpdate):
            return self._update(state, message)
        if isinstance(message, ApexUpdate):
            return self._apex_update(state, message)
        if isinstance(message, CommunityUpdate):
            return self._community_update(state, message)
        return SequenceNumberAdjustConfirm(message.msg_ref, StatusCode.success)

    # --- the answers --------------------------------------------------------------------------------

    @staticmethod
    def _anchors(state: StoreState) -> tuple[TrustAnchor, ...]:
        return (state.apex, *(r.anchor for r in state.anchors))

    @staticmethod
    def _seq_numbers(state: StoreState) -> tuple[SequenceNumber, ...] | None:
        numbers = tuple(SequenceNumber(k, n) for k, n in sorted(state.seq_numbers.items()))
        return numbers or None

    def _status(self, state: StoreState, query: StatusQuery) -> StatusResponse:
        communities = tuple(state.communities) or None
        if query.terse:
            key_ids = tuple(a.key_id for a in self._anchors(state))
            return StatusResponse(query.query, terse=True, ta_key_ids=key_ids, communities=communities)
        extension = state.apex.extension(WRAPPED_APEX_CONTIN_KEY_EXT)
        return StatusResponse(
            query.query,
            trust_anchors=self._anchors(state),
            contin_pub_key_decrypt_alg=None
            if extension is None
            else ApexContingencyKey.decode(extension.value).wrap_algorithm,
            communities=communities,
            seq_numbers=self._seq_numbers(state),
        )

    def _update(self, state: StoreState, message: TampUpdate) -> TampUpdateConfirm:
        trial = state.copy()
        statuses = apply_updates(trial, message.updates)
        if all(s == StatusCode.success for s in statuses):
            state.anchors[:] = trial.anchors
            state.seq_numbers.clear()
            state.seq_numbers.update(trial.seq_numbers)
            held = {a.key_id for a in self._anchors(state)}
            for number in message.seq_numbers or ():
                if number.key_id in held:
                    state.seq_numbers[number.key_id] = max(number.seq_num, state.seq_numbers.get(number.key_id, -1))
        if message.terse:
            return TampUpdateConfirm(message.msg_ref, statuses, terse=True)
        return TampUpdateConfirm(
            message.msg_ref, statuses, trust_anchors=self._anchors(state), seq_numbers=self._seq_numbers(state)
        )

    def _apex_update(self, state: StoreState, message: ApexUpdate) -> ApexUpdateConfirm:
        """Install the new apex in place of the old, whose sequence number is forgotten with it."""
        new_apex = message.apex
        if not supported_key(new_apex):
            return ApexUpdateConfirm(message.msg_ref, StatusCode.unsupportedTAAlgorithm, terse=message.terse)
        if state.apex.key_id != new_apex.key_id:
            state.seq_numbers.pop(state.apex.key_id, None)
        # The contingency key's number stays: a replayed contingency update must never roll the apex back.
        state.apex = new_apex
        if message.clear_trust_anchors:
            for record in state.anchors:
                state.seq_numbers.pop(record.anchor.key_id, None)
            state.anchors.clear()
        state.anchors[:] = [r for r in state.anchors if r.anchor.public_key_info != new_apex.public_key_info]
        if message.clear_communities:
            state.communities.clear()
        if message.seq_number is not None:
            last = state.seq_numbers.get(new_apex.key_id, -1)
            state.seq_numbers[new_apex.key_id] = max(message.seq_number, last)
        if message.terse:
            return ApexUpdateConfirm(message.msg_ref, StatusCode.success, terse=True)
        return ApexUpdateConfirm(
            message.msg_ref,
            StatusCode.success,
            trust_anchors=self._anchors(state),
            communities=tuple(state.communities) or None,
            seq_numbers=self._seq_numbers(state),
        )

    def _community_update(self, state: StoreState, message: CommunityUpdate) -> CommunityUpdateConfirm:
        """Remove then add; removing a community the store is not in fails the whole update."""
        remove = message.remove or ()
        status = StatusCode.success
        if any(c not in state.communities for c in remove):
            status = StatusCode.communityUpdateFailed
        else:
            kept = [c for c in state.communities if c not in remove]
            state.communities[:] = list(dict.fromkeys([*kept, *(message.add or ())]))
        if message.terse:
            return CommunityUpdateConfirm(message.msg_ref, status, terse=True)
        return CommunityUpdateConfirm(message.msg_ref, status, communities=tuple(state.communities) or None)
