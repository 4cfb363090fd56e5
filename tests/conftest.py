"""Shared fixtures: every test gets its own MPKI_HOME and database (SQLite always, PostgreSQL when
MPKI_TEST_POSTGRES_URL is set, each test in a schema of its own that is dropped afterwards)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from mpki.ca import CertificationAuthority
from mpki.ca.runtime import open_authority
from mpki.ceremony import create_dev_hierarchy
from mpki.config import Settings, load_settings
from tests.hsm import softhsm  # noqa: F401  (fixture)

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "smki"
POSTGRES_URL = os.environ.get("MPKI_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


def pytest_report_header() -> str:
    return f"mpki database backends: {', '.join(BACKENDS)}"


@pytest.fixture(scope="session")
def vectors() -> Path:
    if not VECTORS.is_dir():
        pytest.fail(f"SMKI vectors not found at {VECTORS}; ../shared must sit beside the repository")
    return VECTORS


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mpki.sqlite3'}"
        return
    assert POSTGRES_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sql(database_url: str) -> Iterator[Connection]:
    """A raw connection to the test's database, committing each statement (the attacker's view).

    On PostgreSQL the attacker is a superuser who has switched triggers off for the session, so the
    audit trail's append-only trigger (migration 0010) does not stop the tampering the tests need.
    """
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET session_replication_role = replica"))
        yield connection
    engine.dispose()


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """Environment for an `mpki` subprocess bound to this test's home and database."""
    home = tmp_path / "home"
    base = {k: v for k, v in os.environ.items() if not k.startswith("MPKI_")}
    return base | {
        "MPKI_HOME": str(home),
        "MPKI_DATABASE_URL": database_url,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


@pytest.fixture
def authority(settings: Settings) -> Iterator[CertificationAuthority]:
    """A fresh development hierarchy, in-process."""
    ca = open_authority(settings, create_keystore=True)
    create_dev_hierarchy(ca)
    yield ca
    ca.database.dispose()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def mpki(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run the real `mpki` command in a subprocess with this test's environment."""

    def run(*args: str, input: bytes | None = None, check: bool = False) -> Run:
        done = subprocess.run(
            [sys.executable, "-m", "mpki", *args], env=env, input=input, capture_output=True, timeout=120
        )
        result = Run(done.returncode, done.stdout.decode(), done.stderr.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"mpki {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    return run
