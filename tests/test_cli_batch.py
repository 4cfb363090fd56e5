"""`mpki issue-batch`: one result per CSR, bad items reported without costing good ones."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from tests.conftest import Run
from tests.csr_factory import corrupt_signature, device_csr, random_eui64


def test_batch_issues_the_good_and_names_the_bad(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    good = [device_csr(random_eui64(), pem=True) for _ in range(5)]
    bad = corrupt_signature(device_csr(random_eui64(), pem=True))
    first = tmp_path / "first.pem"
    first.write_bytes(b"".join(good[:3]) + bad)
    second = tmp_path / "second.pem"
    second.write_bytes(b"".join(good[3:]))
    bundle = tmp_path / "issued.pem"

    result: Run = mpki("issue-batch", "--profile", "smki-device", str(first), str(second), "--out", str(bundle))

    assert result.returncode == 1
    assert f"rejected {first}#4: the CSR signature does not verify" in result.stderr
    assert "5 issued, 1 rejected" in result.stdout
    certificates = x509.load_pem_x509_certificates(bundle.read_bytes())
    assert len(certificates) == 5
    listed = mpki("cert", "list", "--json", check=True)
    assert listed.stdout.count('"serial"') == 5


def test_batch_of_only_good_csrs_exits_zero(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    csrs = tmp_path / "csrs.pem"
    csrs.write_bytes(b"".join(device_csr(random_eui64(), usage="keyAgreement", pem=True) for _ in range(3)))
    result = mpki("issue-batch", "-p", "smki-device", str(csrs), "-o", str(tmp_path / "out.pem"))
    assert result.returncode == 0, result.stderr
    assert "3 issued, 0 rejected" in result.stdout


def test_batch_with_no_csrs_is_refused(mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    result = mpki("issue-batch", "-p", "smki-device", str(empty), "-o", str(tmp_path / "out.pem"))
    assert result.returncode == 1
    assert "no CSRs found" in result.stderr
    assert not (tmp_path / "out.pem").exists()
