"""End to end over HTTP: a real `mpki serve`, set up with the real CLI, driven with httpx; the certificates
picked up from the batch verify with `openssl verify` against the chain `mpki ca export --chain` gives."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.csr_factory import corrupt_signature, device_csr, ec_key, random_eui64, to_der
from tests.support.serve import running_server

EUI64 = "90B3D51F30010000"


@pytest.fixture
def server(mpki, env: dict[str, str], tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    mpki("init", "--dev", check=True)
    with running_server(env, tmp_path / "serve.log") as base:
        yield base


def test_a_subscriber_batch_end_to_end(mpki, server: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mpki("org", "create", "Acme Energy", "--eui64", EUI64, "--roles", "supplier", check=True)
    mpki("user", "create", "sub@acme.example", "--role", "authorised-subscriber", "--org", "Acme Energy", check=True)
    mpki("user", "create", "agent@provider.example", "--role", "ra-agent", check=True)
    subscriber = mpki("token", "create", "sub@acme.example", check=True).stdout.split()[0]
    agent = mpki("token", "create", "agent@provider.example", check=True).stdout.split()[0]

    euis = [random_eui64() for _ in range(995)]
    csrs = [device_csr(eui, pem=True).decode() for eui in euis[:600]]
    csrs += [base64.b64encode(to_der(device_csr(eui))).decode() for eui in euis[600:]]
    malformed = {
        100: corrupt_signature(device_csr(random_eui64(), pem=True)).decode(),  # proof of possession fails
        400: "this is not a certificate request",
        800: "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAAAA\n-----END CERTIFICATE REQUEST-----\n",
    }
    for index, text in sorted(malformed.items()):
        csrs.insert(index, text)
    # Two devices asked for twice in the same batch, with new keys: held for an RA agent.
    duplicates = [device_csr(euis[5], key=ec_key(), pem=True).decode(), device_csr(euis[700], key=ec_key()).hex()]
    duplicates[1] = base64.b64encode(bytes.fromhex(duplicates[1])).decode()
    csrs += duplicates
    assert len(csrs) == 1000

    with httpx.Client(base_url=server, timeout=120) as http:
        as_subscriber = {"Authorization": f"Bearer {subscriber}"}
        as_agent = {"Authorization": f"Bearer {agent}"}
        started = time.monotonic()
        response = http.post("/api/v1/batches", headers=as_subscriber, json={"profile": "smki-device", "csrs": csrs})
        assert response.status_code == 202, response.text
        assert time.monotonic() - started < 30, "the batch POST must return before the batch is processed"
        batch_id = response.json()["id"]

        deadline = time.monotonic() + 300
        while (batch := http.get(f"/api/v1/batches/{batch_id}", headers=as_subscriber).json())["status"] != "completed":
            assert time.monotonic() < deadline, batch
            time.sleep(0.5)
        assert batch["counts"] | {"size": 0} == {
            "size": 0,
            "processed": 1000,
            "accepted": 997,
            "issued": 995,
            "rejected": 3,
            "held": 2,
        }
        by_status: dict[str, list[dict[str, object]]] = {}
        for item in batch["items"]:
            by_status.setdefault(str(item["status"]), []).append(item)
        assert len(by_status["issued"]) == 995
        assert sorted(int(str(i["item"])) for i in by_status["rejected"]) == sorted(malformed)
        assert all(i["reason"] for i in by_status["rejected"])
        assert [i["item"] for i in by_status["pending"]] == [998, 999]

        held = http.get("/api/v1/requests", headers=as_agent, params={"status": "pending"}).json()["items"]
        assert sorted(r["id"] for r in held) == sorted(int(str(i["request"])) for i in by_status["pending"])
        for request in held:
            approved = http.post(f"/api/v1/requests/{request['id']}/approve", headers=as_agent)
            assert approved.status_code == 200, approved.text
            assert approved.json()["status"] == "issued"

        pickup = http.get(f"/api/v1/batches/{batch_id}/certificates", headers=as_subscriber)
        assert pickup.status_code == 200
        assert pickup.headers["content-type"].startswith("application/pem-certificate-chain")
    certificates = x509.load_pem_x509_certificates(pickup.content)
    assert len(certificates) == 997
    assert len({c.serial_number for c in certificates}) == 997

    chain = x509.load_pem_x509_certificates(
        mpki("ca", "export", "smki-device-ca", "--chain", check=True).stdout.encode()
    )
    roots = [c for c in chain if c.subject == c.issuer]
    assert len(roots) == 1
    (tmp_path / "root.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in roots))
    (tmp_path / "untrusted.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain if c not in roots))
    files = []
    for index, certificate in enumerate(certificates):
        path = tmp_path / f"cert{index}.pem"
        path.write_bytes(certificate.public_bytes(Encoding.PEM))
        files.append(str(path))
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed"
    for start in range(0, len(files), 250):
        done = subprocess.run(
            [openssl, "verify", "-CAfile", "root.pem", "-untrusted", "untrusted.pem", *files[start : start + 250]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count(": OK") == len(files[start : start + 250])
