"""Trust Anchor Management Protocol (RFC 5934) message contents, as typed values an operator fills in.

One job per module: `codes` (content types, OIDs, StatusCode, the decode error), `targets` (whom a message
is for, TAMPMsgRef, TAMPSequenceNumber), `anchors` (TrustAnchorChoice, extensions, RFC 6010 content
constraints), `contingency` (the wrapped apex contingency key and its decrypt-key attribute), `changes`
(what a TAMPUpdate adds, removes or changes), `messages` (the eleven messages and their encoders) and
`decoding` (`decode_message`). Everything is imported from here: `from mpki.asn1.tamp import TampUpdate`.
"""

from mpki.asn1.tamp.anchors import (
    Extension,
    TrustAnchor,
    decode_content_constraints,
    encode_content_constraints,
    encode_extensions,
    key_identifier,
)
from mpki.asn1.tamp.changes import (
    TBS_CHANGE_FIELDS,
    AddAnchor,
    ChangeAnchor,
    RemoveAnchor,
    Update,
    changed_tbs_certificate,
)
from mpki.asn1.tamp.codes import (
    ANY_CONTENT_TYPE,
    CMS_CONTENT_CONSTRAINTS_EXT,
    CONTINGENCY_KEY_ATTR,
    SUBJECT_KEY_IDENTIFIER_EXT,
    WRAPPED_APEX_CONTIN_KEY_EXT,
    ContentType,
    StatusCode,
    TampDecodeError,
)
from mpki.asn1.tamp.contingency import (
    ApexContingencyKey,
    decode_plaintext_symmetric_key,
    encode_plaintext_symmetric_key,
)
from mpki.asn1.tamp.decoding import (
    decode_message,
)
from mpki.asn1.tamp.messages import (
    ApexUpdate,
    ApexUpdateConfirm,
    CommunityUpdate,
    CommunityUpdateConfirm,
    Message,
    SequenceNumberAdjust,
    SequenceNumberAdjustConfirm,
    StatusQuery,
    StatusResponse,
    TampError,
    TampUpdate,
    TampUpdateConfirm,
)
from mpki.asn1.tamp.targets import (
    AllModules,
    CommunityTarget,
    HardwareModules,
    HardwareTarget,
    MsgRef,
    OtherNameTarget,
    SequenceNumber,
    SerialBlock,
    SerialEntry,
    Target,
    UriTarget,
)

__all__ = [
    "ANY_CONTENT_TYPE",
    "CMS_CONTENT_CONSTRAINTS_EXT",
    "CONTINGENCY_KEY_ATTR",
    "SUBJECT_KEY_IDENTIFIER_EXT",
    "TBS_CHANGE_FIELDS",
    "WRAPPED_APEX_CONTIN_KEY_EXT",
    "AddAnchor",
    "AllModules",
    "ApexContingencyKey",
    "ApexUpdate",
    "ApexUpdateConfirm",
    "ChangeAnchor",
    "CommunityTarget",
    "CommunityUpdate",
    "CommunityUpdateConfirm",
    "ContentType",
    "Extension",
    "HardwareModules",
    "HardwareTarget",
    "Message",
    "MsgRef",
    "OtherNameTarget",
    "RemoveAnchor",
    "SequenceNumber",
    "SequenceNumberAdjust",
    "SequenceNumberAdjustConfirm",
    "SerialBlock",
    "SerialEntry",
    "StatusCode",
    "StatusQuery",
    "StatusResponse",
    "TampDecodeError",
    "TampError",
    "TampUpdate",
    "TampUpdateConfirm",
    "Target",
    "TrustAnchor",
    "Update",
    "UriTarget",
    "changed_tbs_certificate",
    "decode_content_constraints",
    "decode_message",
    "decode_plaintext_symmetric_key",
    "encode_content_constraints",
    "encode_extensions",
    "encode_plaintext_symmetric_key",
    "key_identifier",
]
