"""Declarative certificate profiles and the check of a request against one."""

from mpki.profiles.catalogue import PROFILES, get_profile
from mpki.profiles.checks import check_csr, check_public_key, check_reissue
from mpki.profiles.csr import load_csr
from mpki.profiles.key_identifiers import method1_key_identifier, method2_key_identifier
from mpki.profiles.model import CheckedRequest, Profile, ProfileKind, ProfileParameters, Validity, rfc4514_string
from mpki.profiles.render import ca_subject, delta_crl_url, extensions, key_identifier, status_urls, validity

__all__ = [
    "PROFILES",
    "CheckedRequest",
    "Profile",
    "ProfileKind",
    "ProfileParameters",
    "Validity",
    "ca_subject",
    "check_csr",
    "check_public_key",
    "check_reissue",
    "delta_crl_url",
    "extensions",
    "get_profile",
    "key_identifier",
    "load_csr",
    "method1_key_identifier",
    "method2_key_identifier",
    "rfc4514_string",
    "status_urls",
    "validity",
]
