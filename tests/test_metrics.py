"""GET /metrics in process (TestClient): no login, the 0.0.4 text format, and exact figures after known work —
HTTP requests by route template and status, issuance by profile (API, approval, batch worker), revocations
by reason, OCSP answers by outcome, and the installation-wide queue depth and pending requests."""

from __future__ import annotations

import base64
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mpki.ca import CertificationAuthority
from mpki.domain import Role
from mpki.ra import OPERATOR, Directory
from mpki.store import BatchRepository
from mpki.web import create_app
from tests.csr_factory import device_csr, org_csr, random_eui64
from tests.support.status import ca_certificate, ocsp_request, request_by_hash, response_status

EUI_A = "90B3D51F30010000"
ORG = "Acme Energy"
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


@dataclass
class World:
    app: FastAPI
    client: TestClient
    authority: CertificationAuthority
    tokens: dict[str, str]

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {}) | ({"Authorization": f"Bearer {self.tokens[who]}"} if who else {})
        return self.client.request(method, path, headers=headers, **kwargs)

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics by (name, labels)."""
        response = self.client.get("/metrics")
        assert response.status_code == 200, response.text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels; 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def world(authority: CertificationAuthority) -> Iterator[World]:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, ORG, [EUI_A], ["supplier"])
    tokens = {}
    for label, role, org in (("subscriber", Role.AUTHORISED_SUBSCRIBER, ORG), ("agent", Role.RA_AGENT, None)):
        email = f"{label}@example.org"
        directory.create_person(OPERATOR, email, role, org)
        tokens[label] = directory.create_token(OPERATOR, email)
    app = create_app(authority, start_worker=False)
    with TestClient(app) as client:
        yield World(app, client, authority, tokens)


def test_metrics_need_no_login_and_are_prometheus_text(world: World) -> None:
    response = world.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    for name in (
        "mpki_http_requests",
        "mpki_http_request_duration_seconds",
        "mpki_ocsp_responses",
        "mpki_ocsp_response_duration_seconds",
        "mpki_certificates_issued",
        "mpki_certificates_revoked",
        "mpki_batch_queue_depth",
        "mpki_requests_pending",
        "mpki_database_up",
    ):
        assert name in families, name
        assert families[name].documentation, name
    samples = world.scrape()
    assert value(samples, "mpki_database_up") == 1
    assert value(samples, "mpki_batch_queue_depth", status="submitted") == 0
    assert value(samples, "mpki_requests_pending") == 0
    # The first scrape itself was counted, under its route.
    assert value(samples, "mpki_http_requests_total", method="GET", route="/metrics", status="200") == 1
    assert "/metrics" not in world.client.get("/api/v1/openapi.json").json()["paths"]


def test_two_apps_in_one_process_keep_their_own_figures(authority: CertificationAuthority) -> None:
    first, second = create_app(authority, start_worker=False), create_app(authority, start_worker=False)
    with TestClient(first) as one, TestClient(second) as two:
        for _ in range(3):
            assert one.get("/healthz").status_code == 200
        two.get("/healthz")
        text_one, text_two = one.get("/metrics").text, two.get("/metrics").text
    line = 'mpki_http_requests_total{method="GET",route="/healthz",status="200"}'
    assert f"{line} 3.0" in text_one and f"{line} 1.0" in text_two


def test_requests_issuance_batches_and_revocations_are_counted(world: World) -> None:
    # One certificate at once through POST /requests, one refused body, one request without a token.
    issued = world.call("subscriber", "POST", "/api/v1/requests", json={"profile": "smki-device", "csr": device_pem()})
    assert issued.status_code == 201 and issued.json()["status"] == "issued", issued.text
    assert world.call(None, "GET", "/api/v1/batches").status_code == 401
    assert world.call("subscriber", "GET", "/api/v1/batches/12345").status_code == 404
    assert world.call("subscriber", "GET", "/no/such/path/12345").status_code == 404

    # A batch of three waits in the queue until the app's worker takes it.
    csrs = [device_pem() for _ in range(3)]
    batch = world.call("subscriber", "POST", "/api/v1/batches", json={"profile": "smki-device", "csrs": csrs})
    assert batch.status_code == 202, batch.text
    # An organisation certificate waits for an RA agent.
    held = world.call(
        "subscriber",
        "POST",
        "/api/v1/requests",
        json={"profile": "smki-org", "csr": org_csr(bytes.fromhex(EUI_A), "02", pem=True).decode()},
    )
    assert held.status_code == 201 and held.json()["status"] == "pending", held.text
    samples = world.scrape()
    assert value(samples, "mpki_batch_queue_depth", status="submitted") == 1
    assert value(samples, "mpki_batch_queue_depth", status="processing") == 0
    assert value(samples, "mpki_requests_pending") == 1
    assert value(samples, "mpki_certificates_issued_total", profile="smki-device") == 1
    assert value(samples, "mpki_certificates_issued_total", profile="smki-org") == 0

    assert world.app.state.worker.queue.process_next() is not None
    approved = world.call("agent", "POST", f"/api/v1/requests/{held.json()['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "issued", approved.text
    serial = issued.json()["serial"]
    revoked = world.call("subscriber", "POST", f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"})
    assert revoked.status_code == 200, revoked.text
    again = world.call("subscriber", "POST", f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"})
    assert again.status_code == 400, again.text  # refused: not counted

    samples = world.scrape()
    assert value(samples, "mpki_batch_queue_depth", status="submitted") == 0
    assert value(samples, "mpki_requests_pending") == 0
    assert value(samples, "mpki_certificates_issued_total", profile="smki-device") == 4
    assert value(samples, "mpki_certificates_issued_total", profile="smki-org") == 1
    assert value(samples, "mpki_certificates_revoked_total", reason="superseded") == 1
    assert value(samples, "mpki_certificates_revoked_total", reason="keyCompromise") == 0

    def http(method: str, route: str, status: str) -> float:
        return value(samples, "mpki_http_requests_total", method=method, route=route, status=status)

    assert http("POST", "/api/v1/requests", "201") == 2
    assert http("GET", "/api/v1/batches", "401") == 1
    assert http("GET", "/api/v1/batches/{batch_id}", "404") == 1
    assert http("GET", "<unmatched>", "404") == 1
    assert http("POST", "/api/v1/batches", "202") == 1
    assert http("POST", "/api/v1/requests/{request_id}/approve", "200") == 1
    assert http("POST", "/api/v1/certificates/{serial}/revoke", "200") == 1
    assert http("POST", "/api/v1/certificates/{serial}/revoke", "400") == 1
    assert http("GET", "/metrics", "200") == 1
    route = {"method": "POST", "route": "/api/v1/requests"}
    assert value(samples, "mpki_http_request_duration_seconds_count", **route) == 2
    assert value(samples, "mpki_http_request_duration_seconds_bucket", **route, le="+Inf") == 2
    assert value(samples, "mpki_http_request_duration_seconds_sum", **route) > 0
    assert not any(labels and dict(labels).get("route", "").startswith("/ocsp") for _, labels in samples)


def test_ocsp_answers_are_counted_by_outcome(world: World) -> None:
    response = world.call(
        "subscriber", "POST", "/api/v1/requests", json={"profile": "smki-device", "csr": device_pem()}
    )
    certificate = x509.load_pem_x509_certificate(response.json()["certificate"].encode())
    issuer = ca_certificate(world.authority, "smki-device-ca")
    request = ocsp_request(certificate, issuer)
    first = world.client.post("/ocsp", content=request, headers=OCSP_REQUEST)  # looked up and signed
    second = world.client.post("/ocsp", content=request, headers=OCSP_REQUEST)  # from memory
    by_get = world.client.get("/ocsp/" + base64.urlsafe_b64encode(request).decode())  # from memory
    assert first.content == second.content == by_get.content
    garbage = world.client.post("/ocsp", content=b"\x30\x03\x02\x01\x01", headers=OCSP_REQUEST)
    bad_base64 = world.client.get("/ocsp/!!!not-base64!!!")
    stranger = world.client.post("/ocsp", content=request_by_hash(certificate, 5), headers=OCSP_REQUEST)
    wrong_type = world.client.post("/ocsp", content=request, headers={"Content-Type": "text/plain"})
    assert [r.status_code for r in (garbage, bad_base64, stranger, wrong_type)] == [200, 200, 200, 415]
    assert response_status(garbage.content).name == "MALFORMED_REQUEST"
    assert response_status(bad_base64.content).name == "MALFORMED_REQUEST"
    assert response_status(stranger.content).name == "UNAUTHORIZED"

    samples = world.scrape()
    expected = {"signed": 1, "cache_hit": 2, "malformed": 2, "unauthorized": 1, "refused": 1}
    for outcome in ("cache_hit", "signed", "malformed", "unauthorized", "tryLater", "internalError", "refused"):
        got = value(samples, "mpki_ocsp_responses_total", outcome=outcome)
        assert got == expected.get(outcome, 0), outcome
    assert value(samples, "mpki_ocsp_response_duration_seconds_count") == 7
    assert value(samples, "mpki_ocsp_response_duration_seconds_bucket", le="+Inf") == 7
    # OCSP is counted by outcome only, never as an HTTP route.
    assert not any(dict(labels).get("route", "").startswith("/ocsp") for _, labels in samples)


def test_a_database_outage_is_a_gauge_not_a_failed_scrape(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise RuntimeError("the database is away")

    monkeypatch.setattr(world.authority.database, "reader", broken)
    samples = world.scrape()
    assert value(samples, "mpki_database_up") == 0
    assert not any(name == "mpki_batch_queue_depth" for name, _ in samples)


def device_pem() -> str:
    return device_csr(random_eui64(), pem=True).decode()


def test_queue_depth_counts_batches_waiting_and_in_a_workers_hands(world: World) -> None:
    """The gauge is read from the database at each scrape: submitted, then claimed (processing), then done."""
    csrs = {"profile": "smki-device", "csrs": [device_pem(), device_pem()]}
    first = world.call("subscriber", "POST", "/api/v1/batches", json=csrs).json()["id"]
    world.call("subscriber", "POST", "/api/v1/batches", json={"profile": "smki-device", "csrs": [device_pem()]})
    samples = world.scrape()
    assert (
        value(samples, "mpki_batch_queue_depth", status="submitted"),
        value(samples, "mpki_batch_queue_depth", status="processing"),
    ) == (2, 0)
    now = dt.datetime.now(dt.UTC)
    with world.authority.database.transaction() as session:
        assert BatchRepository(session).claim(first, now, now - dt.timedelta(hours=1))
    samples = world.scrape()
    assert value(samples, "mpki_batch_queue_depth", status="submitted") == 1
    assert value(samples, "mpki_batch_queue_depth", status="processing") == 1
    while world.app.state.worker.queue.process_next() is not None:
        pass
    samples = world.scrape()
    assert value(samples, "mpki_batch_queue_depth", status="submitted") == 0
    assert value(samples, "mpki_batch_queue_depth", status="processing") == 1  # claimed by a worker, not finished


def test_serve_with_several_workers_shares_a_fresh_metrics_directory(
    authority: CertificationAuthority, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from mpki.cli.main import app as cli

    for key, setting in env.items():
        monkeypatch.setenv(key, setting)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    shared = authority.settings.run_dir / "prometheus"
    shared.mkdir(parents=True)
    (shared / "counter_4242.db").write_bytes(b"left by a previous run")
    seen: list[tuple[int, str | None, list[str]]] = []

    def fake_run(*args: Any, **kwargs: Any) -> None:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        seen.append((kwargs["workers"], directory, sorted(os.listdir(directory)) if directory else []))

    monkeypatch.setattr(uvicorn, "run", fake_run)
    runner = CliRunner()
    assert runner.invoke(cli, ["serve", "--workers", "3"]).exit_code == 0
    assert seen == [(3, str(shared), [])]  # fresh: the old file is gone
    assert not shared.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # cleaned when serving stops
    assert runner.invoke(cli, ["serve"]).exit_code == 0
    assert seen[-1] == (1, None, [])  # one process needs no shared directory
    chosen = tmp_path / "operator-metrics"
    chosen.mkdir()
    (chosen / "keep.db").write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(chosen))
    assert runner.invoke(cli, ["serve", "--workers", "2"]).exit_code == 0
    assert seen[-1] == (2, str(chosen), ["keep.db"]) and (chosen / "keep.db").exists()  # the operator's, untouched


def test_counters_add_up_over_worker_processes(authority: CertificationAuthority, env: dict[str, str]) -> None:
    """A real `mpki serve --workers 2`: whichever worker answers a scrape, it counts every worker's requests."""
    port = free_port()
    child = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mpki", "serve", "--workers", "2", "--port", str(port)],
        env=child,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, (
                server.stderr.read().decode() if server.stderr else ""
            )
            time.sleep(0.2)
        for _ in range(30):  # a new connection each time: the kernel spreads them over the workers
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        totals = []
        for _ in range(6):
            text = httpx.get(f"{base}/metrics", timeout=5).text
            totals.append(
                sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples
                    if sample.name == "mpki_http_requests_total" and sample.labels.get("route") == "/healthz"
                )
            )
        assert totals == [31] * 6  # the 30 and the readiness probe that succeeded
        directory = authority.settings.run_dir / "prometheus"
        assert any(directory.glob("counter_*.db"))  # the workers' shared counter files
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert not (authority.settings.run_dir / "prometheus").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
