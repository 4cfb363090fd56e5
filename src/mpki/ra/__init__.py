"""The Registration Authority: organisations, people, roles and credentials; authorisation in one place.

Request intake, batches, duplicate checks and approvals come next (issue 4, in progress).
"""

from mpki.ra.authorisation import OPERATOR, POLICY, Principal, Scope, authorise
from mpki.ra.directory import Directory, OrganisationView, PersonView

__all__ = ["OPERATOR", "POLICY", "Directory", "OrganisationView", "PersonView", "Principal", "Scope", "authorise"]
