"""Credentials come from the secrets provider and are masked wherever the runner keeps output."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from medallion.lakehouse.credentials import (
    REDACTED,
    SecretProvider,
    env_name,
    local_secret_values,
    stored_local_secrets,
)
from medallion.lakehouse.errors import SecretNotFound
from medallion.lakehouse.storage import StorageRoot
from medallion.platform.jobs.notebook import redact_notebook

get_secret = SecretProvider().get  # the environment provider, no local fallbacks


def test_a_key_maps_to_its_environment_variable() -> None:
    assert env_name("crm-token") == "MEDALLION_CRM_TOKEN"
    assert env_name("snowflake-password") == "MEDALLION_SNOWFLAKE_PASSWORD"
    assert env_name("api-key", scope="partner") == "MEDALLION_PARTNER_API_KEY"


def test_the_environment_wins_over_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALLION_CRM_TOKEN", "from-the-env")

    assert get_secret("crm-token", fallback=lambda: "from-the-stand-in") == "from-the-env"


def test_the_fallback_answers_when_the_environment_has_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MEDALLION_CRM_TOKEN", raising=False)

    assert get_secret("crm-token", fallback=lambda: "from-the-stand-in") == "from-the-stand-in"
    assert get_secret("crm-token", fallback=lambda: None) is None


def test_a_missing_secret_names_the_variable_it_looked_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MEDALLION_SNOWFLAKE_PASSWORD", raising=False)

    with pytest.raises(SecretNotFound) as raised:
        get_secret("snowflake-password")

    assert str(raised.value) == (
        "secret medallion/snowflake-password: expected a value in the environment variable "
        "MEDALLION_SNOWFLAKE_PASSWORD, found none"
    )


def test_a_pinned_stand_in_credential_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDALLION_REDSHIFT_USER", "loader")
    secrets = SecretProvider(pinned={"redshift-user": "medallion"})

    assert secrets.get("redshift-user") == "medallion"
    assert "medallion" not in repr(secrets)


def test_a_generated_key_is_made_once_under_the_storage_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDALLION_PII_HASH_SALT", raising=False)
    monkeypatch.delenv("MEDALLION_CRM_TOKEN", raising=False)
    secrets = SecretProvider(generated_under=StorageRoot(tmp_path))

    salt = secrets.get("pii-hash-salt")

    assert salt == secrets.get("pii-hash-salt")
    assert salt == (tmp_path / "_system" / "secrets" / "pii-hash-salt").read_text()
    with pytest.raises(SecretNotFound):
        secrets.get("crm-token")  # a credential is never generated


def test_local_values_include_the_environment_and_the_stand_ins_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("snowflake-user", "snowflake-password", "redshift-user", "redshift-password"):
        monkeypatch.delenv(env_name(key), raising=False)
    monkeypatch.setenv("MEDALLION_CRM_TOKEN", "token-abc-123")
    stored = tmp_path / "_system" / "devstack" / "postgres" / "password"
    stored.parent.mkdir(parents=True)
    stored.write_text("pg-secret-xyz\n")

    assert stored_local_secrets(StorageRoot(tmp_path)) == ["pg-secret-xyz"]
    found = stored_local_secrets(StorageRoot(tmp_path))
    assert local_secret_values([*found, "a-longer-secret"]) == [
        "a-longer-secret", "pg-secret-xyz", "token-abc-123"
    ]


def test_a_kept_notebook_shows_no_credential(tmp_path: Path) -> None:
    # nbformat's builders and readers carry no type hints.
    cell = new_code_cell('print(token)')  # type: ignore[no-untyped-call]
    cell.outputs = [new_output("stream", name="stdout", text='token is "s3cr\\et-tok"\n')]  # type: ignore[no-untyped-call]
    path = tmp_path / "executed.ipynb"
    source = new_code_cell('token = os.environ["MEDALLION_CRM_TOKEN"]')  # type: ignore[no-untyped-call]
    nbformat.write(new_notebook(cells=[source, cell]), str(path))  # type: ignore[no-untyped-call]

    masked = redact_notebook(path, ['s3cr\\et-tok'])

    text = path.read_text()
    assert masked == 1
    assert "s3cr" not in text
    kept = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    assert kept.cells[1].outputs[0].text == f'token is "{REDACTED}"\n'
