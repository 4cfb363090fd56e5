"""RFC 5280 CRLReason codes and who may give which."""

from __future__ import annotations

import enum
import re

from mpki.domain.errors import InvalidRequest


class RevocationReason(enum.IntEnum):
    """CRLReason (RFC 5280 5.3.1); the value is the code written in CRLs and OCSP responses."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10

    @property
    def rfc_name(self) -> str:
        """The ASN.1 name: `keyCompromise`, `cACompromise`, … as OpenSSL and RFC 5280 spell them."""
        return _RFC_NAMES[self]

    @classmethod
    def parse(cls, text: str) -> RevocationReason:
        """Accept the RFC name (`keyCompromise`), a dashed or underscored name, or the number."""
        key = re.sub(r"[-_\s]", "", text.strip()).lower()
        if key.isdigit() and int(key) in cls._value2member_map_:
            return cls(int(key))
        for member in cls:
            if member.rfc_name.lower() == key:
                return member
        known = ", ".join(m.rfc_name for m in cls if m in END_ENTITY_REASONS | CA_REASONS)
        raise InvalidRequest(f"unknown revocation reason {text!r}; use one of {known}")


_RFC_NAMES = {
    RevocationReason.UNSPECIFIED: "unspecified",
    RevocationReason.KEY_COMPROMISE: "keyCompromise",
    RevocationReason.CA_COMPROMISE: "cACompromise",
    RevocationReason.AFFILIATION_CHANGED: "affiliationChanged",
    RevocationReason.SUPERSEDED: "superseded",
    RevocationReason.CESSATION_OF_OPERATION: "cessationOfOperation",
    RevocationReason.CERTIFICATE_HOLD: "certificateHold",
    RevocationReason.REMOVE_FROM_CRL: "removeFromCRL",
    RevocationReason.PRIVILEGE_WITHDRAWN: "privilegeWithdrawn",
    RevocationReason.AA_COMPROMISE: "aACompromise",
}

R = RevocationReason
# removeFromCRL only appears in delta CRLs when a hold is released; aACompromise is for attribute
# certificates; cACompromise describes the issuer, so it belongs to CA certificates.
END_ENTITY_REASONS = frozenset(
    {
        R.UNSPECIFIED,
        R.KEY_COMPROMISE,
        R.AFFILIATION_CHANGED,
        R.SUPERSEDED,
        R.CESSATION_OF_OPERATION,
        R.CERTIFICATE_HOLD,
        R.PRIVILEGE_WITHDRAWN,
    }
)
CA_REASONS = frozenset(
    {
        R.UNSPECIFIED,
        R.KEY_COMPROMISE,
        R.CA_COMPROMISE,
        R.AFFILIATION_CHANGED,
        R.SUPERSEDED,
        R.CESSATION_OF_OPERATION,
        R.PRIVILEGE_WITHDRAWN,
    }
)
