"""The shipped SMKI ceremony on a fresh SoftHSM2, end to end through the real CLI:
ceremony -> verified record -> HSM-signed certificates that openssl accepts -> quorum activation ->
backup of a token with the backup group's shares -> restore onto a replacement HSM and issue from it;
a clone of the contingency token; a new token with the token-admin group's shares."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from mpki.keys.pkcs11_tokens import write_softhsm_conf
from mpki.keys.softhsm_store import token_directories
from tests.conftest import Run
from tests.csr_factory import device_csr, random_eui64
from tests.hsm import SoftHsm

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ceremonies" / "smki-root.yaml"


def _verify(leaf: Path, root: Path, issuing: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(root), "-untrusted", str(issuing), str(leaf)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_example_ceremony_on_softhsm(mpki, env: dict[str, str], softhsm: SoftHsm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env.update({"SOFTHSM2_CONF": str(softhsm.conf), "MPKI_PKCS11_MODULE": softhsm.module})
    shares, record = tmp_path / "shares", tmp_path / "record.json"

    ran: Run = mpki("ceremony", "run", str(EXAMPLE), "--shares-dir", str(shares), "--record", str(record))
    assert ran.returncode == 0, ran.stderr
    every_share = sorted(shares.iterdir())
    groups = {f: json.loads(f.read_text())["group"] for f in every_share}
    share_files = [f for f in every_share if groups[f] == "ca-keys"]
    contingency_files = [f for f in every_share if groups[f] == "contingency"]
    backup_files = [f for f in every_share if groups[f] == "backup"]
    admin_files = [f for f in every_share if groups[f] == "token-admin"]
    assert len(share_files) == 5 and len(contingency_files) == 5
    assert len(backup_files) == 3 and len(admin_files) == 3 and len(every_share) == 16
    custodians = {f: json.loads(f.read_text())["custodian"] for f in every_share}
    # The contingency key's custodians are other people; the backup and token-admin groups may overlap.
    assert not {custodians[f] for f in contingency_files} & {custodians[f] for f in share_files}
    assert "ceremony record OK" in mpki("ceremony", "verify", str(record), check=True).stdout

    status = json.loads(mpki("keys", "status", "--json", check=True).stdout)
    assert [g["group"] for g in status["groups"] if g["active"]] == ["ca-keys"]
    assert {g["group"] for g in status["groups"]} == {"ca-keys", "backup", "token-admin", "contingency"}
    assert {k["backend"] for k in status["keys"]} == {"pkcs11"}
    assert {k["key_id"].split("/")[0] for k in status["keys"]} == {"smki-root", "smki-issuing"}
    # The contingency key's group is registered but never activated; its token is not the CA keys'.
    assert {g["group"]: g["active"] for g in status["groups"]}["contingency"] is False

    root, issuing = tmp_path / "root.pem", tmp_path / "device-ca.pem"
    mpki("ca", "export", "smki-root", "-o", str(root), check=True)
    mpki("ca", "export", "smki-device-ca", "-o", str(issuing), check=True)
    csr = tmp_path / "device.csr"
    csr.write_bytes(device_csr(random_eui64(), pem=True))
    leaf = tmp_path / "device.pem"
    mpki("issue", "-p", "smki-device", "--csr", str(csr), "-o", str(leaf), check=True)
    assert _verify(leaf, root, issuing).returncode == 0

    # Deactivated, the HSM keys do not sign; M-1 shares are refused; M shares bring them back.
    mpki("keys", "deactivate", check=True)
    refused = mpki("issue", "-p", "smki-device", "--csr", str(csr), "-o", str(tmp_path / "no.pem"))
    assert refused.returncode == 1 and "not active" in refused.stderr
    too_few = mpki("keys", "activate", "--share", str(share_files[0]), "--share", str(share_files[3]))
    assert too_few.returncode == 1 and "2 of 3 required shares" in too_few.stderr
    three = [arg for f in share_files[1:4] for arg in ("--share", str(f))]
    mpki("keys", "activate", *three, check=True)

    # Back up the token holding the Device CA key with the backup group's shares (no activation needed).
    backup = tmp_path / "device-ca.backup.json"
    two = [arg for f in backup_files[:2] for arg in ("--share", str(f))]
    refused = mpki("keys", "backup", "smki-device-ca", "-o", str(backup))
    assert refused.returncode == 1 and "needs fresh shares of the backup group" in refused.stderr
    assert not backup.exists()
    done = mpki("keys", "backup", "smki-device-ca", "-o", str(backup), *two)
    assert done.returncode == 0, done.stderr
    assert "token smki-issuing (2 keys)" in done.stdout
    assert b"PRIVATE KEY" not in backup.read_bytes()

    # The HSM is lost: restore onto a replacement (its own SOFTHSM2_CONF), then issue from it.
    replacement = write_softhsm_conf(tmp_path / "replacement-hsm")
    restored = mpki("keys", "restore", "smki-device-ca", "--from", str(backup), "--to-conf", str(replacement), *two)
    assert restored.returncode == 0, restored.stderr
    assert "activate the keys there to prove them" in restored.stdout
    assert [d.label for d in token_directories(replacement.parent / "tokens")] == ["smki-issuing"]
    again = mpki("keys", "restore", "smki-device-ca", "--from", str(backup), "--to-conf", str(replacement), *two)
    assert again.returncode == 1 and "already exists" in again.stderr
    env["SOFTHSM2_CONF"] = str(replacement)
    mpki("keys", "deactivate", check=True)
    mpki("keys", "activate", *three, check=True)  # the same user PIN: the same token
    second = tmp_path / "device2.pem"
    csr.write_bytes(device_csr(random_eui64(), pem=True))
    mpki("issue", "-p", "smki-device", "--csr", str(csr), "-o", str(second), check=True)
    assert _verify(second, root, issuing).returncode == 0
    env["SOFTHSM2_CONF"] = str(softhsm.conf)

    # The contingency key leaves its token only as a clone of the whole token, onto a backup HSM.
    spare = write_softhsm_conf(tmp_path / "contingency-backup-hsm")
    cloned = mpki("keys", "clone", "contingency", "--to-conf", str(spare), *two)
    assert cloned.returncode == 0, cloned.stderr
    assert [d.label for d in token_directories(spare.parent / "tokens")] == ["contingency"]

    # A new token needs the token-admin group's shares (its SO PIN); the backup group's are refused.
    refused = mpki("keys", "init-token", "spare-hsm", *two)
    assert refused.returncode == 1 and "has the backup role" in refused.stderr
    admins = [arg for f in admin_files[1:] for arg in ("--share", str(f))]
    mpki("keys", "init-token", "spare-hsm", *admins, check=True)

    exported = mpki("audit", "export", check=True).stdout
    actions = [json.loads(line)["action"] for line in exported.splitlines()]
    for action in (
        "ceremony.step",
        "ceremony.completed",
        "key.generated",
        "ca.created",
        "keys.deactivated",
        "keys.activation_failed",
        "keys.activated",
        "key.backed_up",
        "key.backup_failed",
        "token.initialised",
        "token.initialisation_failed",
        "key.restored",
        "key.restore_failed",
        "token.cloned",
    ):
        assert action in actions, action
    assert "audit chain OK" in mpki("audit", "verify", check=True).stdout
