"""End-to-end batch throughput over HTTP: submit N device CSRs to a real `mpki serve`, wait until the
batch is completed, pick every certificate up; against the raw crypto limit measured in the same run.
The server signs through the `mpki signer` process it starts (issue 13); the run fails unless that
process made every certificate signature.

    python bench/batch.py --n 10000 --db sqlite|postgres
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from issue import database_url, drop_schema, make_csrs, raw_limit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mpki(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mpki", *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mpki {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    csrs = make_csrs(args.n)
    payload = [base64.b64encode(der).decode() for der in csrs]

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url, schema = database_url(args.db, home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPKI_")}
        env |= {"MPKI_HOME": str(home / "home"), "MPKI_DATABASE_URL": url}
        server = None
        try:
            mpki(env, "init", "--dev")
            mpki(env, "org", "create", "Bench Supplier", "--eui64", "90B3D51F30010000", "--roles", "supplier")
            mpki(
                env,
                "user",
                "create",
                "bench@supplier.test",
                "--org",
                "Bench Supplier",
                "--role",
                "authorised-subscriber",
            )
            token = mpki(env, "token", "create", "bench@supplier.test").splitlines()[0].strip()
            port = free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "mpki", "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
                for _ in range(100):
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                start = time.perf_counter()
                submitted = client.post("/api/v1/batches", json={"profile": "smki-device", "csrs": payload})
                if submitted.status_code != 202:
                    raise SystemExit(f"submit failed: {submitted.status_code} {submitted.text[:300]}")
                batch_id = submitted.json()["id"]
                while True:
                    status = client.get(f"/api/v1/batches/{batch_id}", params={"items": "false"}).json()
                    if status["status"] == "completed":
                        break
                    time.sleep(0.05)
                pickup = client.get(f"/api/v1/batches/{batch_id}/certificates")
                elapsed = time.perf_counter() - start
            issued = pickup.text.count("-----BEGIN CERTIFICATE-----")
            if issued != args.n:
                raise SystemExit(f"expected {args.n} certificates, picked up {issued}: {status.get('counts')}")
            # `mpki serve` signs through the signer process it started: it must have made every signature.
            signer = json.loads(mpki(env, "signer", "status", "--json"))
            through_signer = int(signer["signatures"].get("certificate", 0))
            if through_signer < args.n:
                raise SystemExit(f"only {through_signer} of {args.n} certificates were signed by the signer process")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
            if schema:
                drop_schema(schema)
    per_s = args.n / elapsed
    limit = raw_limit(csrs)
    print(f"db: {args.db}")
    print(f"n: {args.n}")
    print(f"batch_certs_per_s: {per_s:.0f}")
    print(f"signed_by_signer_process: {through_signer}")
    print(f"raw_limit_per_s: {limit:.0f}")
    print(f"ratio: {per_s / limit:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
