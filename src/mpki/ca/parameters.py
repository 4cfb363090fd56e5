"""Translating installation settings into the parameters profiles are rendered with."""

from __future__ import annotations

from mpki.config import Settings
from mpki.profiles import ProfileParameters


def profile_parameters(settings: Settings) -> ProfileParameters:
    smki = settings.smki
    return ProfileParameters(
        org_policy_oids=smki.org_policy_oids,
        device_policy_oids=smki.device_policy_oids,
        ca_policy_oids=smki.ca_policy_oids,
        hw_type_oid=smki.hw_type_oid,
        org_validity_years=smki.org_validity_years,
        ca_validity_years=smki.ca_validity_years,
        root_validity_years=smki.root_validity_years,
        org_roles=smki.org_roles,
        tls_leaf_validity_days=settings.tls_leaf_validity_days,
        tls_ca_validity_years=settings.tls_ca_validity_years,
        public_url=settings.public_url,
    )
