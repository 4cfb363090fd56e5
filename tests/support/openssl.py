"""The `openssl` command line as an independent relying party: `openssl ocsp` and `openssl verify`, and
what they print, read back into values a test can assert on.

Example::

    answer = ocsp_query(tmp_path, f"{base}/ocsp", "issuer.pem", certs=["leaf.pem"], ca_file="root.pem")
    assert answer.verified and answer.statuses["leaf.pem"]["status"] == "good"
    assert answer.request_nonce == answer.response_nonce
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["OcspResult", "VerifyResult", "ocsp_query", "openssl", "verify"]

_STATUS_LINE = re.compile(r"^(\S+): (good|revoked|unknown)$")
_DETAIL_LINE = re.compile(r"^\t([A-Za-z ]+): (.*)$")
_NONCE = r"{} Extensions:\s*\n\s*OCSP Nonce:\s*\n\s*([0-9A-Fa-f]+)"


def openssl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `openssl ARGS` in `cwd` (relative file names are what it prints back)."""
    binary = shutil.which("openssl")
    assert binary, "openssl is needed"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@dataclass(frozen=True)
class OcspResult:
    """What `openssl ocsp -req_text -resp_text` printed, with each certificate's status and details."""

    returncode: int
    stdout: str
    stderr: str
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)
    request_nonce: str | None = None
    response_nonce: str | None = None

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    @property
    def verified(self) -> bool:
        return "Response verify OK" in self.text and "Response Verify Failure" not in self.text

    def status(self, label: str) -> str:
        assert label in self.statuses, self.text
        return self.statuses[label]["status"]


def _statuses(stdout: str) -> dict[str, dict[str, str]]:
    """`label: good` lines, each with the tab-indented `Reason: ...`, `This Update: ...` lines after it."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in stdout.splitlines():
        if status := _STATUS_LINE.match(line):
            current = found[status.group(1)] = {"status": status.group(2)}
        elif current is not None and (detail := _DETAIL_LINE.match(line)):
            current[detail.group(1)] = detail.group(2).strip()
        else:
            current = None
    return found


def ocsp_query(
    cwd: Path,
    url: str | None,
    issuer: str,
    *,
    certs: Sequence[str] = (),
    serials: Sequence[str] = (),
    ca_file: str | None = None,
    nonce: bool = True,
    respout: str | None = None,
    reqout: str | None = None,
    respin: str | None = None,
) -> OcspResult:
    """`openssl ocsp -issuer ISSUER [-cert C]... [-serial S]... -url URL [-CAfile F] -req_text -resp_text`.

    openssl adds a nonce unless `nonce` is False (`-no_nonce`); it prints both the request's and the
    response's nonce extension, returned here as hex of the extension value (the OCTET STRING included).
    With `respin` (and no `url`) openssl checks a response fetched some other way.
    """
    args = ["ocsp", "-issuer", issuer, "-req_text", "-resp_text"]
    if url:
        args += ["-url", url]
    if respin:
        args += ["-respin", respin]
    for cert in certs:
        args += ["-cert", cert]
    for serial in serials:
        args += ["-serial", serial]
    if ca_file:
        args += ["-CAfile", ca_file]
    if not nonce:
        args.append("-no_nonce")
    if respout:
        args += ["-respout", respout]
    if reqout:
        args += ["-reqout", reqout]
    done = openssl(cwd, *args)
    request_nonce = re.search(_NONCE.format("Request"), done.stdout)
    response_nonce = re.search(_NONCE.format("Response"), done.stdout)
    return OcspResult(
        done.returncode,
        done.stdout,
        done.stderr,
        _statuses(done.stdout),
        request_nonce.group(1).upper() if request_nonce else None,
        response_nonce.group(1).upper() if response_nonce else None,
    )


@dataclass(frozen=True)
class VerifyResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and ": OK" in self.output

    @property
    def revoked(self) -> bool:
        return self.returncode != 0 and "certificate revoked" in self.output


def verify(cwd: Path, ca_file: str, cert: str, *, check_all: bool = False) -> VerifyResult:
    """`openssl verify -crl_check[_all] -CAfile CA_FILE CERT`, where CA_FILE holds certificates and CRLs."""
    done = openssl(cwd, "verify", "-crl_check_all" if check_all else "-crl_check", "-CAfile", ca_file, cert)
    return VerifyResult(done.returncode, done.stdout + done.stderr)
