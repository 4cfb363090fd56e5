"""`mpki recovery` through the real command line, kept short (each call is a process): the drill, dual
control's one-line refusal, an issuing-CA recovery whose record reconciles, and a root recovery whose
TAMPUpdate the reference endpoint accepts once and refuses the second time. The per-refusal matrix is
in-process in test_recovery.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.asn1.tamp import TrustAnchor
from mpki.ca import IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.ceremony import run_dev_ceremony
from mpki.config import load_settings
from mpki.ra import OPERATOR
from mpki.ra.directory import Directory
from mpki.tams import TrustAnchorStore
from tests.csr_factory import org_csr

ORG_EUI = "90B3D51F30040000"


def _recovery_id(stdout: str) -> str:
    found = re.search(r"^recovery (\d+) ", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def _installation(env: dict[str, str], count: int) -> list[str]:
    """What `mpki init --dev` makes (its ceremony, in-process to spare a process), `count` live organisation
    certificates, and the store `mpki tams endpoint init` makes, holding the TLS root too as a meter would
    (the TAMPUpdate of a root recovery removes the old root: a store without it answers trustAnchorNotFound)."""
    home = Path(env["MPKI_HOME"])
    run_dev_ceremony(env, home)
    authority = open_authority(load_settings(env))
    try:
        cas = {view.name: view for view in authority.list_cas()}
        where = home / "tams" / "endpoint"
        where.mkdir(parents=True)
        key = ec.generate_private_key(ec.SECP256R1())
        (where / "endpoint-key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        TrustAnchorStore.initialise(
            where / "store.json",
            key,
            TrustAnchor.from_certificate(cas["smki-root"].certificate_der),
            management=[(TrustAnchor.from_certificate(cas["tls-root"].certificate_der), ())],
        )
        org = Directory(authority.database).create_organisation(OPERATOR, "CLI Energy", [ORG_EUI], ["supplier"])
        orders = [
            IssuanceOrder("smki-org", org_csr(bytes.fromhex(ORG_EUI)), approved_by="setup", organisation_id=org.id)
            for _ in range(count)
        ]
        return [r.certificate.serial for r in authority.issue_many(orders, actor="setup") if r.certificate]
    finally:
        authority.database.dispose()


def test_drill_command_passes(tmp_path: Path) -> None:
    """Once, not per database: the drill makes its own throwaway installation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPKI_")} | {"NO_COLOR": "1", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "mpki", "recovery", "drill"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drill passed: 17 of 17 steps" in done.stdout
    assert "FAIL" not in done.stderr and done.stderr.count("PASS") == 17
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_issuing_ca_recovery_through_the_cli(mpki, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    live = _installation(env, 3)
    assert len(live) == 3

    names = ["--new-name", "smki-org-ca-2", "--common-name", "mpki Dev Org CA 2"]
    proposed = mpki("recovery", "issuing-ca", "smki-org-ca", *names, "--by", "alice", check=True)
    recovery = _recovery_id(proposed.stdout)
    assert f"mpki recovery approve {recovery} --by" in proposed.stdout
    refused = mpki("recovery", "approve", recovery, "--by", "alice")
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "dual control" in lines[0], refused.stderr
    approved = mpki("recovery", "approve", recovery, "--by", "bob")
    assert approved.returncode == 0, approved.stderr
    record = json.loads(mpki("recovery", "show", recovery, "--json", check=True).stdout)
    assert record["status"] == "completed" and record["proposed_by"] == "alice" and record["approved_by"] == "bob"
    outcome = record["outcome"]
    assert outcome["listed"] == outcome["reissued"] == outcome["new_live"] == 3 and outcome["old_live_after"] == 0
    assert record["items"] == {"reissue": {"total": 3, "done": 3}}


def test_root_recovery_through_the_cli(mpki, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    _installation(env, 0)
    names = ["--new-name", "tls-root-2", "--common-name", "mpki Dev TLS Root 2"]
    proposed = mpki("recovery", "root", "tls-root", *names, "--by", "a", check=True)
    recovery = _recovery_id(proposed.stdout)
    approved = mpki("recovery", "approve", recovery, "--by", "b")
    assert approved.returncode == 0, approved.stderr
    found = re.search(r"tamp_update: (\S+\.der)", approved.stdout)
    assert found, approved.stdout
    update = found.group(1)
    assert Path(update).parent == Path(env["MPKI_HOME"]) / "recovery" / recovery

    accepted = mpki("tams", "endpoint", "process", update)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "accepted TAMPUpdate seq 1" in accepted.stdout + accepted.stderr
    replayed = mpki("tams", "endpoint", "process", update)
    assert replayed.returncode == 1
    assert "seqNumFailure" in replayed.stdout + replayed.stderr or "sequence" in replayed.stdout + replayed.stderr
