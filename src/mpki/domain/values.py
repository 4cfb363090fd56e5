"""Small immutable value types used across rooms."""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from mpki.domain.errors import InvalidRequest


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (rule 7)."""
    return dt.datetime.now(dt.UTC)


class KeyUsageChoice(enum.StrEnum):
    """The single key usage an SMKI end-entity certificate carries."""

    DIGITAL_SIGNATURE = "digitalSignature"
    KEY_AGREEMENT = "keyAgreement"


class CertificateStatus(enum.StrEnum):
    """Lifecycle state of an issued certificate as the service tracks it."""

    ISSUED = "issued"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


class SerialStatus(enum.StrEnum):
    """A serial is reserved before signing, then used by a stored certificate or abandoned after a crash."""

    RESERVED = "reserved"
    USED = "used"
    ABANDONED = "abandoned"


class RemotePartyRole(enum.IntEnum):
    """GBCS RemotePartyRole codes, carried in an SMKI organisation subject's OU as two hex digits."""

    ROOT = 0
    RECOVERY = 1
    SUPPLIER = 2
    NETWORK_OPERATOR = 3
    ACCESS_CONTROL_BROKER = 4
    TRANSITIONAL_COS = 5
    WAN_PROVIDER = 6
    ISSUING_AUTHORITY = 7
    OTHER = 127

    @property
    def code(self) -> str:
        """The OU form: two upper-case hex digits."""
        return f"{self.value:02X}"

    @classmethod
    def from_code(cls, code: str) -> RemotePartyRole:
        if not re.fullmatch(r"[0-9A-F]{2}", code):
            raise InvalidRequest(f"role code {code!r} is not two upper-case hex digits")
        value = int(code, 16)
        try:
            return cls(value)
        except ValueError:
            raise InvalidRequest(f"role code {code!r} is not a known RemotePartyRole") from None

    @classmethod
    def from_name(cls, name: str) -> RemotePartyRole:
        """Parse a role given as a code (`02`), a number or a name (`supplier`, `network-operator`)."""
        key = name.strip().replace("-", "_").upper()
        if key in cls.__members__:
            return cls[key]
        compact = key.replace("_", "")
        for member in cls:
            if member.name.replace("_", "") == compact:
                return member
        if re.fullmatch(r"[0-9A-F]{2}", key):
            return cls.from_code(key)
        raise InvalidRequest(f"unknown remote-party role {name!r}")


@dataclass(frozen=True, slots=True)
class Eui64:
    """An 8-octet EUI-64 Entity Identifier, the identity of an SMKI device or organisation."""

    octets: bytes

    def __post_init__(self) -> None:
        if len(self.octets) != 8:
            raise InvalidRequest(f"an EUI-64 has 8 octets, this one has {len(self.octets)}")

    @classmethod
    def parse(cls, text: str) -> Eui64:
        """Accept `90B3D51F30010000`, `90-B3-…` or `90:b3:…`."""
        cleaned = re.sub(r"[-:\s]", "", text)
        if not re.fullmatch(r"[0-9A-Fa-f]*", cleaned):
            raise InvalidRequest(f"EUI-64 {text!r} is not hexadecimal")
        if len(cleaned) != 16:
            raise InvalidRequest(f"EUI-64 {text!r} must be 16 hex digits (8 octets)")
        return cls(bytes.fromhex(cleaned))

    @property
    def hex(self) -> str:
        return self.octets.hex().upper()

    def __str__(self) -> str:
        return self.hex


def format_serial(serial: int) -> str:
    """Serials are shown and stored as lower-case hex without separators."""
    return f"{serial:x}"


def parse_serial(text: str) -> int:
    """Parse a serial given in hex, with or without `0x` and colons."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or not re.fullmatch(r"[0-9a-f]+", cleaned):
        raise InvalidRequest(f"serial {text!r} is not hexadecimal")
    return int(cleaned, 16)
