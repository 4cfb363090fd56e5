"""The error hierarchy: every error a caller is meant to see is an MpkiError with a one-line message."""


class MpkiError(Exception):
    """Base of every error mpki reports to people; its message is one clear line."""


class InvalidRequest(MpkiError):
    """The input (a CSR, a profile name, an argument) is unacceptable; nothing was written."""


class Conflict(MpkiError):
    """The request is well formed but conflicts with the current state (already decided, already exists)."""


class Unavailable(MpkiError):
    """A dependency is not ready (an inactive keystore, a signer that does not answer); try again later."""


class NotFound(MpkiError):
    """A named object (CA, certificate, profile, key) does not exist."""


class ConfigError(MpkiError):
    """Settings are missing or contradictory."""


class KeyStoreError(MpkiError):
    """The keystore refused or failed an operation (wrong passphrase, missing key, not active)."""


class AuditChainBroken(MpkiError):
    """The audit chain does not verify; the message names the first broken link."""


class Unauthenticated(MpkiError):
    """No valid credential was presented."""


class Forbidden(MpkiError):
    """The principal is known but may not perform this action on this organisation's data."""
