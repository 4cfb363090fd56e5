"""SoftHSM2 for tests: a token directory and `SOFTHSM2_CONF` of the test's own (DEPENDENCIES.md gotcha 4).

Use the `softhsm` fixture (import it into a test module or conftest.py):

    from tests.hsm import softhsm  # noqa: F401

    def test_something(softhsm: SoftHsm) -> None:
        softhsm.init_token("ca", so_pin="so-pin-1", user_pin="user-pin-1")
        store = Pkcs11KeyStore(softhsm.module, lambda label: "user-pin-1")

Subprocesses (`mpki`, `pkcs11-tool`) get the same tokens through `env=softhsm.env`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpki.keys.pkcs11_tokens import SOFTHSM2_MODULE, write_softhsm_conf


@dataclass(frozen=True)
class SoftHsm:
    """One test's SoftHSM2: its module, configuration file and token directory."""

    module: str
    conf: Path
    tokens: Path
    env: dict[str, str]

    def init_token(self, label: str, so_pin: str, user_pin: str) -> None:
        """Initialise a token the way `mpki` does."""
        from mpki.keys.pkcs11_tokens import initialise_token

        initialise_token(self.module, label, so_pin, user_pin)


def softhsm_available() -> str | None:
    """Why SoftHSM2 tests cannot run here, or None if they can."""
    if not os.path.exists(SOFTHSM2_MODULE):
        return f"SoftHSM2 is not installed ({SOFTHSM2_MODULE} missing; apt-get install softhsm2)"
    if shutil.which("pkcs11-tool") is None:
        return "pkcs11-tool is not installed (apt-get install opensc)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 is not installed"
    return None


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    reason = softhsm_available()
    if reason is not None:
        pytest.skip(reason)
    from mpki.keys.pkcs11_tokens import reset_module

    conf = write_softhsm_conf(tmp_path / "softhsm")
    tokens = conf.parent / "tokens"
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    monkeypatch.setenv("MPKI_PKCS11_MODULE", SOFTHSM2_MODULE)
    # The module may still be loaded with an earlier test's tokens: make it read this test's afresh.
    reset_module(SOFTHSM2_MODULE)
    env = dict(os.environ) | {"SOFTHSM2_CONF": str(conf), "MPKI_PKCS11_MODULE": SOFTHSM2_MODULE}
    try:
        yield SoftHsm(module=SOFTHSM2_MODULE, conf=conf, tokens=tokens, env=env)
    finally:
        reset_module(SOFTHSM2_MODULE)
