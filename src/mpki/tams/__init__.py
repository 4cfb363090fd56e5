"""Trust Anchor Management Protocol (RFC 5934): signed TAMP messages and a reference trust-anchor store.

The message contents are typed values in `mpki.asn1.tamp`; this room signs and verifies them in CMS
(`signing`), keeps the apex contingency key wrapped (`contingency`), and holds the store a device would
run (`endpoint`, with its JSON `state`).
"""

from mpki.tams.contingency import contingency_extension, unwrap_contingency_key, wrap_contingency_key
from mpki.tams.endpoint import TrustAnchorStore
from mpki.tams.errors import TampRefused
from mpki.tams.signing import SignerInfo, anchor_public_key, parse, parse_verified, public_key_id, sign_message, verify
from mpki.tams.state import AnchorRecord, HardwareIdentity, StoreState

__all__ = [
    "AnchorRecord",
    "HardwareIdentity",
    "SignerInfo",
    "StoreState",
    "TampRefused",
    "TrustAnchorStore",
    "anchor_public_key",
    "contingency_extension",
    "parse",
    "parse_verified",
    "public_key_id",
    "sign_message",
    "unwrap_contingency_key",
    "verify",
    "wrap_contingency_key",
]
