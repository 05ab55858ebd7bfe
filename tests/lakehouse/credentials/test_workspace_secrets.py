"""On a workspace, secrets come from its secret scope through databricks-sdk (a local stand-in
of the Secrets API here), behind the same ``get_secret`` as the environment provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medallion.lakehouse import credentials
from medallion.lakehouse.credentials import PROVIDER_ENV
from medallion.lakehouse.environment import LOCAL, Environment, get_secret
from medallion.lakehouse.errors import SecretNotFound
from medallion.lakehouse.storage import StorageRoot
from tests.platform.jobs.workspace_api import TOKEN, Workspace, workspace_api

WORKSPACE = Workspace(
    secrets={("medallion", "crm-token"): "crm-t0ken-from-the-scope",
             ("partner", "api-key"): "partner-key"},
    forbidden_scopes=("locked",),
)


@pytest.fixture
def on_workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``MEDALLION_SECRETS=workspace``, the SDK authenticated to the stand-in by environment."""
    with workspace_api(WORKSPACE) as url:
        monkeypatch.setenv(PROVIDER_ENV, "workspace")
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", "/nonexistent/databrickscfg")
        monkeypatch.setenv("MEDALLION_CRM_TOKEN", "the-environment-is-not-asked")
        credentials._workspace_client.cache_clear()
        yield url
        credentials._workspace_client.cache_clear()


def test_a_secret_is_read_from_the_workspace_scope(on_workspace: str) -> None:
    assert get_secret("crm-token") == "crm-t0ken-from-the-scope"
    assert get_secret("api-key", scope="partner") == "partner-key"


def test_a_missing_secret_falls_back_or_names_the_scope(on_workspace: str) -> None:
    assert get_secret("pii-hash-salt", fallback=lambda: "generated") == "generated"
    with pytest.raises(SecretNotFound) as caught:
        get_secret("pii-hash-salt")
    assert str(caught.value) == (
        "secret medallion/pii-hash-salt: expected a value in the secret scope 'medallion' of "
        "the workspace, found none"
    )


def test_the_local_target_still_generates_its_salt_when_the_scope_has_none(
    on_workspace: str, tmp_path: Path
) -> None:
    secrets = Environment.resolve(StorageRoot(tmp_path), target=LOCAL).secrets

    assert secrets.workspace
    assert secrets.get("crm-token") == "crm-t0ken-from-the-scope"
    assert secrets.get("pii-hash-salt") == secrets.get("pii-hash-salt") != ""


def test_a_refused_read_is_an_error_not_a_missing_secret(on_workspace: str) -> None:
    with pytest.raises(SecretNotFound) as caught:
        get_secret("anything", scope="locked", fallback=lambda: "never used")
    # The SDK appends its configuration, with the token masked.
    assert str(caught.value).startswith(
        "secret locked/anything: the workspace refused to read it: PermissionDenied: User does "
        "not have READ permission on locked."
    )
    assert TOKEN not in str(caught.value)
