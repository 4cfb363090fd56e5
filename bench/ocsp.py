"""OCSP throughput and latency: `mpki serve` against OpenSSL's own responder (`openssl ocsp -index … -multi 2`)
over the same certificates, driven by the same load generator (bench/loadgen.py, a separate process,
HTTP/1.1 keep-alive where the server allows it) in the same run.

    python bench/ocsp.py --n 100000 --duration 10 --connections 32 [--workers 2] [--db sqlite|postgres]

mpki answers from responses it pre-signed (a lookup, not a signature); OpenSSL signs every response.
Requests carry no nonce (a nonce forces a fresh signature on any responder, RFC 8954). The OpenSSL
responder listens on every interface, so it runs in its own network namespace (`unshare -n`, `lo` up)
together with its load generator, and is stopped with its `-multi` children by PID.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import free_port, mpki
from issue import database_url, drop_schema, make_csrs
from mpki.ca import IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.config import load_settings
from mpki.status import StatusService

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
ISSUING_CA = "smki-device-ca"


def issue_and_presign(env: dict[str, str], count: int) -> tuple[list[int], bytes, float, float]:
    """Issue `count` device certificates in-process and pre-sign their responses; (serials, CA DER, timings)."""
    authority = open_authority(load_settings(env))
    csrs = make_csrs(min(count, 2000))  # the CA does not refuse a repeated key; distinct keys cost minutes
    orders = [IssuanceOrder("smki-device", csrs[i % len(csrs)], approved_by="bench") for i in range(count)]
    started = time.perf_counter()
    results = authority.issue_many(orders, actor="bench")
    issued_s = time.perf_counter() - started
    serials = [int(r.certificate.serial, 16) for r in results if r.certificate is not None]
    if len(serials) != count:
        raise SystemExit("issuance failed for some orders")
    status = StatusService(authority)
    started = time.perf_counter()
    signed = status.ocsp.presign()
    presign_s = time.perf_counter() - started
    if signed < count:
        raise SystemExit(f"pre-signed only {signed} of {count} responses")
    ca_der = authority.get_ca(ISSUING_CA).certificate_der
    authority.database.dispose()
    return serials, ca_der, issued_s, presign_s


def write_requests(path: Path, issuer: x509.Certificate, serials: list[int]) -> None:
    """OCSP requests (SHA-1 CertID, no nonce) for every serial, length-prefixed, for the load generator."""
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(issuer.subject.public_bytes())
    key_hash = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    issuer_name_hash = name_hash.finalize()
    with path.open("wb") as out:
        for serial in serials:
            der = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(issuer_name_hash, key_hash, serial, hashes.SHA1())
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            out.write(struct.pack(">I", len(der)) + der)


def loadgen(port: int, requests: Path, args: argparse.Namespace, prefix: list[str] | None = None) -> dict[str, float]:
    command = [
        sys.executable,
        str(LOADGEN),
        "--port",
        str(port),
        "--requests",
        str(requests),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--connections",
        str(args.connections),
    ]
    done = subprocess.run([*(prefix or []), *command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"load generator failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def probe(port: int, requests: Path, count: int = 200) -> None:
    """Before any load: answers must be for the certificate asked about, good, and signed by a responder
    whose key verifies them, so that a fast wrong answer cannot pass as throughput."""
    sys.path.insert(0, str(LOADGEN.parent))
    from loadgen import read_requests

    bodies = read_requests(requests)
    for body in bodies[:: max(1, len(bodies) // count)][:count]:
        asked = ocsp.load_der_ocsp_request(body)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/ocsp", content=body, headers={"Content-Type": "application/ocsp-request"}
        )
        answer = ocsp.load_der_ocsp_response(reply.content)
        responder = answer.certificates[0].public_key()
        if not isinstance(responder, ec.EllipticCurvePublicKey):
            raise SystemExit("unexpected responder key type")
        responder.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm))
        if answer.serial_number != asked.serial_number or answer.certificate_status != ocsp.OCSPCertStatus.GOOD:
            raise SystemExit(f"wrong answer for serial {asked.serial_number:x}")


def run_mpki(env: dict[str, str], requests: Path, args: argparse.Namespace, log: Path) -> dict[str, float]:
    port = free_port()
    command = [sys.executable, "-m", "mpki", "serve", "--port", str(port), "--workers", str(args.workers)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"mpki serve did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            probe(port, requests)
            return loadgen(port, requests, args)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def responder_credentials(work: Path) -> tuple[Path, Path]:
    """A throwaway responder key and certificate for OpenSSL: it signs each answer with it (clients in this
    bench do not verify); mpki's own responder keys never leave its keystore."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench OpenSSL responder")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = work / "rkey.pem", work / "rsigner.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def run_openssl(
    ca_der: bytes, serials: list[int], requests: Path, args: argparse.Namespace, work: Path
) -> dict[str, float]:
    """OpenSSL's responder and the load generator together in a private network namespace."""
    index = work / "index.txt"
    with index.open("w") as out:
        for serial in serials:
            text = f"{serial:X}"
            out.write(f"V\t491231235959Z\t\t{'0' * (len(text) % 2)}{text}\tunknown\t/CN=device\n")
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    ca_pem = work / "ca.pem"
    ca_pem.write_bytes(x509.load_der_x509_certificate(ca_der).public_bytes(serialization.Encoding.PEM))
    rkey, rsigner = responder_credentials(work)
    port = 8888
    pid_file = work / "openssl.pid"
    script = work / "run.sh"
    script.write_text(
        "set -e\n"
        "ip link set lo up\n"
        f"openssl ocsp -index {index} -port {port} -rsigner {rsigner} -rkey {rkey} -CA {ca_pem} "
        f"-multi 2 > {work}/openssl.log 2>&1 &\n"
        f"echo $! > {pid_file}\n"
        f"for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && break; sleep 0.1; done\n"
        f"{sys.executable} {LOADGEN} --port {port} --requests {requests} --duration {args.duration} "
        f"--warmup {args.warmup} --connections {args.connections}\n"
        f"kill -TERM -- -$(cat {pid_file}) 2>/dev/null || kill $(cat {pid_file}) 2>/dev/null || true\n"
    )
    done = subprocess.run(
        ["unshare", "-n", "setsid", "bash", str(script)], capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        log = (work / "openssl.log").read_text() if (work / "openssl.log").exists() else ""
        raise SystemExit(f"OpenSSL run failed: {done.stderr.strip()[-2000:]} {log[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["requests"]:
        raise SystemExit(f"OpenSSL answered nothing: {(work / 'openssl.log').read_text()[-2000:]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="certificates (and distinct requests)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per responder")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="mpki serve worker processes")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    if shutil.which("unshare") is None or shutil.which("openssl") is None:
        raise SystemExit("this bench needs unshare (util-linux) and openssl")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url, schema = database_url(args.db, work)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPKI_")}
        env |= {"MPKI_HOME": str(work / "home"), "MPKI_DATABASE_URL": url}
        try:
            mpki(env, "init", "--dev")
            print(f"# issuing {args.n} device certificates and pre-signing their responses", file=sys.stderr)
            serials, ca_der, issued_s, presign_s = issue_and_presign(env, args.n)
            requests = work / "requests.bin"
            write_requests(requests, x509.load_der_x509_certificate(ca_der), serials)
            print("# load on mpki serve", file=sys.stderr)
            ours = run_mpki(env, requests, args, work / "serve.log")
            print("# load on openssl ocsp", file=sys.stderr)
            theirs = run_openssl(ca_der, serials, requests, args, work)
        finally:
            if schema:
                drop_schema(schema)

    print(json.dumps({"mpki": ours, "openssl": theirs}), file=sys.stderr)
    for label, result in (("mpki", ours), ("openssl", theirs)):
        if result["bad_responses"] or result["requests"] == 0:
            raise SystemExit(f"{label}: {result['bad_responses']} bad responses of {result['requests']}")
    print(f"db: {args.db}")
    print(f"n: {args.n}")
    print(f"connections: {args.connections}")
    print(f"mpki_workers: {args.workers}")
    print(f"presign_per_s: {args.n / presign_s:.0f}")
    print(f"mpki_ocsp_per_s: {ours['per_s']:.0f}")
    print(f"mpki_p50_ms: {ours['p50_ms']:.2f}")
    print(f"p99_ms: {ours['p99_ms']:.2f}")
    print(f"mpki_errors: {ours['errors']}")
    print(f"openssl_ocsp_per_s: {theirs['per_s']:.0f}")
    print(f"openssl_p50_ms: {theirs['p50_ms']:.2f}")
    print(f"openssl_p99_ms: {theirs['p99_ms']:.2f}")
    print(f"openssl_connections_opened: {theirs['connections_opened']}")
    print(f"ratio: {ours['per_s'] / theirs['per_s']:.2f}")
    del issued_s
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
