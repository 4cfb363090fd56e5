"""Custody that survives a compromised web process (issue 13), tried on a production installation.

A ceremony marked production makes the SMKI hierarchy on SoftHSM2. `mpki signer` runs on its own, the
custodians activate it through the CLI, and `mpki serve` answers. Then everything the web process can
see is searched for material from which a PIN, a key-encryption key or the backup key can be derived:
- every file under MPKI_HOME and the run directory;
- the web process's environment, the files it holds open, and the libraries it loaded.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from mpki.keys.quorum import combine, read_share
from mpki.keys.secrets import backup_key, so_pin, software_kek, user_pin
from mpki.signer.client import signer_listening
from tests.hsm import SoftHsm
from tests.support.serve import free_port

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ceremonies" / "smki-root.yaml"
TOKENS = ("smki-root", "smki-issuing", "contingency")
WINDOW_LIMIT = 256 * 1024  # files up to this size are also tried as secrets at every offset


def derived_from(secret: bytes) -> list[bytes]:
    """Every key and PIN mpki derives from a 32-byte quorum secret, whatever its group."""
    values = [software_kek(secret), backup_key(secret)]
    for label in TOKENS:
        values += [user_pin(secret, label).encode(), so_pin(secret, label).encode()]
    return values


def encodings(value: bytes) -> list[bytes]:
    forms = [value, value.hex().encode(), value.hex().upper().encode(), base64.b64encode(value)]
    forms += [base64.urlsafe_b64encode(value).rstrip(b"="), base64.b32encode(value)]
    return forms


def candidates(data: bytes) -> Iterator[bytes]:
    """What in `data` could be a secret: 32-byte windows of a small file, hex and base64 runs anywhere."""
    if len(data) <= WINDOW_LIMIT:
        for offset in range(0, max(0, len(data) - 31)):
            yield data[offset : offset + 32]
    for run in re.findall(rb"[0-9a-fA-F]{64}", data):
        yield bytes.fromhex(run.decode())
    for run in re.findall(rb"[A-Za-z0-9+/_-]{43}=?", data):
        try:
            decoded = base64.b64decode(
                run + b"=" * (-len(run) % 4), altchars=b"-_" if b"-" in run or b"_" in run else None
            )
        except ValueError:
            continue
        if len(decoded) == 32:
            yield decoded


class Secrets:
    """The installation's real secrets (rebuilt here from the custodians' shares) and all they derive."""

    def __init__(self, shares_dir: Path) -> None:
        by_group: dict[str, list[Path]] = {}
        for path in shares_dir.iterdir():
            by_group.setdefault(read_share(path).group, []).append(path)
        self.secrets = {group: combine([read_share(p) for p in paths])[1] for group, paths in by_group.items()}
        derived = [value for secret in self.secrets.values() for value in derived_from(secret)]
        self.targets = set(derived) | set(self.secrets.values())
        self.needles = {form for value in self.targets for form in encodings(value)}

    def found_in(self, data: bytes) -> str | None:
        """Why `data` holds secret material, or None: a secret or derived value in some encoding, or a
        32-byte string from which one is derived."""
        for needle in self.needles:
            if needle in data:
                return "holds a secret, PIN or key in plain sight"
        wanted = self.targets
        for candidate in candidates(data):
            if candidate in wanted or any(value in wanted for value in derived_from(candidate)):
                return "holds a string from which a PIN or key is derived"
        return None


def files_under(*roots: Path) -> Iterable[Path]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mpki-p"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def wait_for(predicate: object, what: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert process.poll() is None, f"{what}: the process exited"
        assert time.monotonic() < deadline, f"{what}: timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the point is the processes, not SQL
def test_production_serve_activated_on_softhsm_leaves_no_secret_to_the_web(  # type: ignore[no-untyped-def]
    mpki, env: dict[str, str], softhsm: SoftHsm, tmp_path: Path, short_dir: Path
) -> None:
    home = Path(env["MPKI_HOME"])
    run_dir, anchors = short_dir / "run", tmp_path / "anchors"
    env.update(
        {
            "SOFTHSM2_CONF": str(softhsm.conf),
            "MPKI_PKCS11_MODULE": softhsm.module,
            "MPKI_RUN_DIR": str(run_dir),
            "MPKI_AUDIT_ANCHOR_DIR": str(anchors),
        }
    )
    ceremony = tmp_path / "production.yaml"
    ceremony.write_text(EXAMPLE.read_text().replace("environment: test", "environment: production"))
    shares = tmp_path / "shares"  # with the custodians, never under MPKI_HOME
    ran = mpki("ceremony", "run", str(ceremony), "--shares-dir", str(shares), "--record", str(tmp_path / "r.json"))
    assert ran.returncode == 0, ran.stderr
    assert 'environment = "production"' in (home / "mpki.toml").read_text()
    secrets = Secrets(shares)
    assert {"ca-keys", "backup", "token-admin", "contingency"} <= set(secrets.secrets)

    # No signer yet: nothing signs, and serve refuses to start without one.
    refused = mpki("crl", "generate")
    assert refused.returncode == 1 and "no signer answers" in refused.stderr
    refused = mpki("serve", "--port", str(free_port()))
    assert refused.returncode == 1 and "no signer answers" in refused.stderr

    signer = subprocess.Popen([sys.executable, "-m", "mpki", "signer"], env=env, stdout=subprocess.DEVNULL)
    web: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: signer_listening(run_dir / "signer.sock"), "signer", signer)
        activation = sorted(p for p in shares.iterdir() if read_share(p).group == "ca-keys")[:3]
        mpki("keys", "activate", *[a for p in activation for a in ("--share", str(p))], check=True)
        assert mpki("crl", "generate").returncode == 0

        port = free_port()
        log = (tmp_path / "serve.log").open("wb")
        web = subprocess.Popen(
            [sys.executable, "-m", "mpki", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, "mpki serve", web)
        crl = httpx.get(f"{base}/crl/smki-device-ca.crl", timeout=10)
        assert crl.status_code == 200 and crl.content[:1] == b"\x30"
        status = json.loads(mpki("signer", "status", "--json", check=True).stdout)
        assert status["signatures"].get("crl", 0) >= 1 and status["active_groups"] == ["ca-keys"]

        # Everything on disk that this installation (or its web process) could read.
        for path in files_under(home, run_dir):
            reason = secrets.found_in(path.read_bytes())
            assert reason is None, f"{path} {reason}"
        assert not list(run_dir.rglob("*.secret"))

        # The web process: its environment, every file it holds open, and no HSM library loaded.
        proc = Path(f"/proc/{web.pid}")
        reason = secrets.found_in((proc / "environ").read_bytes())
        assert reason is None, f"the web process's environment {reason}"
        opened = [os.readlink(fd) for fd in (proc / "fd").iterdir() if fd.is_symlink()]
        for target in opened:
            if target.startswith("/") and Path(target).is_file():
                reason = secrets.found_in(Path(target).read_bytes())
                assert reason is None, f"the web process holds {target} open, which {reason}"
        assert not [t for t in opened if str(softhsm.tokens) in t or str(home / "keys") in t]
        assert "libsofthsm2" not in (proc / "maps").read_text()
    finally:
        for process in (web, signer):
            if process is not None:
                process.terminate()
                process.wait(30)

    # A restarted signer holds nothing until the custodians come back.
    signer = subprocess.Popen([sys.executable, "-m", "mpki", "signer"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: signer_listening(run_dir / "signer.sock"), "signer", signer)
        again = mpki("crl", "generate")
        assert again.returncode == 1 and "not active" in again.stderr
    finally:
        signer.terminate()
        signer.wait(30)
    verified = mpki("audit", "verify", "--anchors", str(anchors))
    assert verified.returncode == 0, verified.stderr + verified.stdout
    assert (anchors / "checkpoints.jsonl").stat().st_size > 0


def test_the_search_finds_every_form_of_a_leak(tmp_path: Path) -> None:
    """The detector above must be able to fail: each way a secret could lie in a file is found."""
    from mpki.keys.quorum import QuorumPolicy, split, write_share

    shares = tmp_path / "shares"
    shares.mkdir()
    secret = os.urandom(32)
    for share in split(secret, QuorumPolicy("ca-keys", 2, 3), "leak-test", ["a", "b", "c"]):
        write_share(share, shares / f"{share.custodian}.json")
    found = Secrets(shares)
    leaks = {
        "raw at an odd offset": b"x" * 7 + secret + b"y" * 5,
        "hex in JSON": json.dumps({"s": secret.hex()}).encode(),
        "base64": b"secret=" + base64.b64encode(secret),
        "a user PIN": user_pin(secret, "smki-root").encode(),
        "the KEK": b"\x00" + software_kek(secret),
        "the backup key, base64url": base64.urlsafe_b64encode(backup_key(secret)),
    }
    for name, data in leaks.items():
        assert found.found_in(data) is not None, name
    assert found.found_in(os.urandom(4096)) is None
