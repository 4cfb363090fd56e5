"""Settings precedence and the small value types every room relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpki.config import Environment, load_settings
from mpki.domain import ConfigError, Eui64, InvalidRequest, RemotePartyRole, parse_serial


def test_defaults_put_sqlite_under_home(tmp_path: Path) -> None:
    settings = load_settings({"MPKI_HOME": str(tmp_path)})
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'mpki.sqlite3'}"
    assert settings.smki.org_validity_years == 10


def test_file_then_environment_override(tmp_path: Path) -> None:
    (tmp_path / "mpki.toml").write_text(
        'environment = "test"\nissuance_chunk_size = 50\n'
        '[smki]\nhw_type_oid = "1.2.3"\norg_policy_oids = ["1.2.4"]\n'
        '[smki.test]\ndevice_policy_oids = ["1.2.5", "1.2.6"]\n'
    )
    settings = load_settings({"MPKI_HOME": str(tmp_path), "MPKI_SMKI_HW_TYPE_OID": "1.2.9"})
    assert settings.environment is Environment.TEST
    assert settings.issuance_chunk_size == 50
    assert settings.smki.hw_type_oid == "1.2.9"
    assert settings.smki.org_policy_oids == ("1.2.4",)
    assert settings.smki.device_policy_oids == ("1.2.5", "1.2.6")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MPKI_ENVIRONMENT": "staging"}, "MPKI_ENVIRONMENT"),
        ({"MPKI_ISSUANCE_CHUNK_SIZE": "many"}, "whole number"),
        ({"MPKI_ISSUANCE_CHUNK_SIZE": "0"}, "at least 1"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"MPKI_HOME": str(tmp_path), **env})


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "mpki.toml").write_text("environment = \n")
    with pytest.raises(ConfigError, match=r"mpki\.toml"):
        load_settings({"MPKI_HOME": str(tmp_path)})


def test_eui64_parsing() -> None:
    assert Eui64.parse("90-b3-d5-1f-30-01-00-00").hex == "90B3D51F30010000"
    for bad in ("90B3D51F300100", "90B3D51F3001000000", "ZZB3D51F30010000"):
        with pytest.raises(InvalidRequest):
            Eui64.parse(bad)
    with pytest.raises(InvalidRequest, match="8 octets"):
        Eui64(b"\x00" * 7)


def test_roles_by_code_and_name() -> None:
    assert RemotePartyRole.from_code("02") is RemotePartyRole.SUPPLIER
    assert RemotePartyRole.from_name("network-operator").code == "03"
    assert RemotePartyRole.from_name("7F") is RemotePartyRole.OTHER
    for bad in ("08", "2", "ab"):
        with pytest.raises(InvalidRequest):
            RemotePartyRole.from_code(bad)
    with pytest.raises(InvalidRequest):
        RemotePartyRole.from_name("plumber")


def test_serials_parse_in_any_common_form() -> None:
    assert parse_serial("0x1A:2b") == 0x1A2B
    with pytest.raises(InvalidRequest):
        parse_serial("xyz")
