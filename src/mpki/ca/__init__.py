"""The signer: approved order + profile -> certificate signed through `keys` -> stored and audited."""

from mpki.ca.authority import CertificationAuthority
from mpki.ca.model import CaView, IssuanceOrder, IssuanceResult, IssuedView

__all__ = ["CaView", "CertificationAuthority", "IssuanceOrder", "IssuanceResult", "IssuedView"]
