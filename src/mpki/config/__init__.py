"""Settings from the environment and an optional `MPKI_HOME/mpki.toml`; durations and limits live here."""

from mpki.config.settings import (
    Environment,
    PortalSettings,
    ReportSettings,
    Settings,
    SmkiSettings,
    StatusSettings,
    load_settings,
)

__all__ = [
    "Environment",
    "PortalSettings",
    "ReportSettings",
    "Settings",
    "SmkiSettings",
    "StatusSettings",
    "load_settings",
]
