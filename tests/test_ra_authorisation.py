"""The authorisation matrix (ARCHITECTURE rule 8): every role x every action x {own, another, no organisation}.

EXPECTED is written out by hand from the specification of the roles, not derived from `POLICY`: a change
to the policy that the specification does not make shows up here as a failing cell.
"""

from __future__ import annotations

import pytest

from mpki.domain import Action, Forbidden, Role
from mpki.ra.authorisation import OPERATOR, POLICY, Principal, Scope, authorise, visible_organisation

OWN_ORG = 1
OTHER_ORG = 2

# Every action by its wire name, so the table below reads as the specification does. If an Action is added
# or renamed, test_the_table_names_every_action fails until the table says who may do it.
ALL_ACTIONS = frozenset(
    {
        "org.create",
        "org.view",
        "org.update",
        "person.create",
        "person.view",
        "token.create",
        "request.submit",
        "request.view",
        "request.decide",
        "certificate.view",
        "certificate.revoke",
        "ca.admin",
        "audit.view",
        "report.view",
    }
)

ANYWHERE = "any"
OWN_ONLY = "own"

# role -> (where, the actions it may do there); any action not listed is refused everywhere.
EXPECTED: dict[str, tuple[str, frozenset[str]]] = {
    "service-admin": (
        ANYWHERE,
        frozenset(
            {
                "org.create",
                "org.view",
                "org.update",
                "person.create",
                "person.view",
                "token.create",
                "request.submit",
                "request.view",
                "request.decide",
                "certificate.view",
                "certificate.revoke",
                "ca.admin",
                "audit.view",
                "report.view",
            }
        ),
    ),
    "ra-manager": (
        ANYWHERE,
        frozenset(
            {
                "org.create",
                "org.view",
                "org.update",
                "person.create",
                "person.view",
                "token.create",
                "request.view",
                "request.decide",
                "certificate.view",
                "certificate.revoke",
                "report.view",
            }
        ),
    ),
    "ra-agent": (
        ANYWHERE,
        frozenset(
            {
                "org.view",
                "person.view",
                "request.view",
                "request.decide",
                "certificate.view",
                "certificate.revoke",
                "report.view",
            }
        ),
    ),
    "authorised-subscriber": (
        OWN_ONLY,
        frozenset({"org.view", "request.submit", "request.view", "certificate.view", "certificate.revoke"}),
    ),
    "org-ra-officer": (
        OWN_ONLY,
        frozenset(
            {
                "org.view",
                "person.view",
                "request.submit",
                "request.view",
                "request.decide",
                "certificate.view",
                "certificate.revoke",
                "report.view",
            }
        ),
    ),
    "auditor": (
        ANYWHERE,
        frozenset({"org.view", "person.view", "request.view", "certificate.view", "audit.view", "report.view"}),
    ),
}

# The organisation the action touches, relative to the principal's own.
TARGETS = {"own": OWN_ORG, "other": OTHER_ORG, "none": None}
ORG_SIDE_ROLES = {"authorised-subscriber", "org-ra-officer"}


def principal_for(role: Role) -> Principal:
    """Organisation-side roles belong to OWN_ORG; provider-side roles belong to no organisation."""
    organisation = OWN_ORG if role.value in ORG_SIDE_ROLES else None
    return Principal(person_id=7, email=f"{role.value}@example.test", role=role, organisation_id=organisation)


def expected_allowed(role: Role, action: Action, target: str) -> bool:
    where, actions = EXPECTED[role.value]
    if action.value not in actions:
        return False
    return where == ANYWHERE or target == "own"


CELLS = [(role, action, target) for role in Role for action in Action for target in TARGETS]


def test_the_table_names_every_role_and_action() -> None:
    assert {role.value for role in Role} == set(EXPECTED)
    assert {action.value for action in Action} == ALL_ACTIONS
    for role, (_, actions) in EXPECTED.items():
        assert actions <= ALL_ACTIONS, role
    assert {role.value for role in Role if role.needs_organisation} == ORG_SIDE_ROLES
    assert set(POLICY) == set(Role)


def test_the_matrix_is_not_trivial() -> None:
    """Guard against a table (or an authorise) that allows or forbids everything."""
    allowed = sum(expected_allowed(role, action, target) for role, action, target in CELLS)
    assert 0 < allowed < len(CELLS)
    assert len(CELLS) == 6 * 14 * 3


@pytest.mark.parametrize(
    ("role", "action", "target"),
    CELLS,
    ids=[f"{role.value}-{action.value}-{target}" for role, action, target in CELLS],
)
def test_authorise_matrix(role: Role, action: Action, target: str) -> None:
    principal = principal_for(role)
    organisation = TARGETS[target]
    if expected_allowed(role, action, target):
        scope = authorise(principal, action, organisation)
        assert scope is (Scope.ANY if EXPECTED[role.value][0] == ANYWHERE else Scope.OWN)
        return
    with pytest.raises(Forbidden) as refused:
        authorise(principal, action, organisation)
    message = str(refused.value)
    assert role.value in message, message
    assert action.value in message, message


@pytest.mark.parametrize("role", [Role.AUTHORISED_SUBSCRIBER, Role.ORG_RA_OFFICER])
@pytest.mark.parametrize("organisation", [None, OWN_ORG, OTHER_ORG])
def test_org_side_principal_without_an_organisation_may_do_nothing(role: Role, organisation: int | None) -> None:
    """A detached org-side principal (organisation None) must not match 'no organisation' as its own."""
    detached = Principal(person_id=9, email="x@example.test", role=role, organisation_id=None)
    for action in Action:
        with pytest.raises(Forbidden):
            authorise(detached, action, organisation)
    for action in Action:
        with pytest.raises(Forbidden):
            visible_organisation(detached, action)


def test_default_organisation_argument_is_no_organisation() -> None:
    """`authorise(p, action)` without an organisation is the 'no organisation' column."""
    assert authorise(OPERATOR, Action.CA_ADMIN) is Scope.ANY
    assert authorise(principal_for(Role.RA_MANAGER), Action.ORG_CREATE) is Scope.ANY
    with pytest.raises(Forbidden):
        authorise(principal_for(Role.ORG_RA_OFFICER), Action.REQUEST_VIEW)
    with pytest.raises(Forbidden):
        authorise(principal_for(Role.AUTHORISED_SUBSCRIBER), Action.REQUEST_SUBMIT)


def test_operator_is_a_provider_service_admin() -> None:
    assert OPERATOR.role is Role.SERVICE_ADMIN
    assert OPERATOR.organisation_id is None
    assert OPERATOR.actor == "service-admin:operator@localhost"


ROLE_ACTIONS = [(role, action) for role in Role for action in Action]


@pytest.mark.parametrize(
    ("role", "action"), ROLE_ACTIONS, ids=[f"{role.value}-{action.value}" for role, action in ROLE_ACTIONS]
)
def test_visible_organisation(role: Role, action: Action) -> None:
    """Listings: None (everything) for anywhere-roles, the own organisation for own-only roles, else Forbidden."""
    principal = principal_for(role)
    where, actions = EXPECTED[role.value]
    if action.value not in actions:
        with pytest.raises(Forbidden) as refused:
            visible_organisation(principal, action)
        assert role.value in str(refused.value)
        assert action.value in str(refused.value)
    elif where == ANYWHERE:
        assert visible_organisation(principal, action) is None
    else:
        assert visible_organisation(principal, action) == OWN_ORG


def test_visible_organisation_follows_the_principal() -> None:
    """An own-only principal of organisation 42 sees organisation 42, not a constant."""
    officer = Principal(person_id=1, email="o@example.test", role=Role.ORG_RA_OFFICER, organisation_id=42)
    assert visible_organisation(officer, Action.PERSON_VIEW) == 42
    assert authorise(officer, Action.REQUEST_DECIDE, 42) is Scope.OWN
    with pytest.raises(Forbidden, match="own organisation"):
        authorise(officer, Action.REQUEST_DECIDE, OWN_ORG)
