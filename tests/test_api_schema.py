"""Schemathesis, bounded: generated requests against /api/v1/openapi.json never cause a 5xx and every
answer conforms to the schema (status codes, content types, bodies)."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import (  # noqa: E402
    HealthCheck,
    given,
    settings,
)
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from mpki.ca import CertificationAuthority  # noqa: E402
from mpki.domain import Role  # noqa: E402
from mpki.ra import OPERATOR, Directory  # noqa: E402
from mpki.web import create_app  # noqa: E402


def test_the_api_conforms_to_its_schema(authority: CertificationAuthority) -> None:
    directory = Directory(authority.database)
    directory.create_organisation(OPERATOR, "Acme Energy", ["90B3D51F30010000"], ["supplier"])
    directory.create_person(OPERATOR, "admin@example.org", Role.SERVICE_ADMIN, None)
    headers = {"Authorization": f"Bearer {directory.create_token(OPERATOR, 'admin@example.org')}"}
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(authority, start_worker=False))
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            # Schema-valid is not semantically valid here (a CSR string, an organisation name), so a 400 for
            # generated data is right; every other check (no 5xx, status codes, content types, bodies) runs.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Exception as error:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(error)[:1500]}")
    assert not failures, "\n\n".join(failures)
