"""Which signer this process uses: the `mpki signer` process when one answers, else (never in production) its own."""

from __future__ import annotations

from mpki.config import Environment, Settings
from mpki.domain import ConfigError
from mpki.signer.client import SignerClient, signer_listening
from mpki.signer.service import SigningService
from mpki.signer.signing_keys import Signer, SigningKeys


def open_signer(settings: Settings) -> Signer:
    """The signer process on `settings.signer_socket`; in development and tests with none running, an
    in-process service (the convenience that keeps one-shot CLI commands working without a daemon)."""
    if signer_listening(settings.signer_socket):
        return SignerClient(settings.signer_socket)
    if settings.environment is Environment.PRODUCTION:
        raise ConfigError(
            f"no signer answers at {settings.signer_socket}: start `mpki signer` (as the signer's own user) "
            "and present the custodians' shares with `mpki keys activate`"
        )
    return SigningService(settings)


def open_signing_keys(settings: Settings) -> SigningKeys:
    return SigningKeys(open_signer(settings))
