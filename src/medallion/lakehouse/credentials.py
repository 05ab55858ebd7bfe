"""Credentials from the secrets provider: secret scopes on Databricks, the environment locally.

Every source credential is a key of the ``medallion`` scope:

| key | used by | local environment variable |
|---|---|---|
| ``snowflake-user`` | Snowflake orders | ``MEDALLION_SNOWFLAKE_USER`` |
| ``snowflake-password`` | Snowflake orders | ``MEDALLION_SNOWFLAKE_PASSWORD`` |
| ``redshift-user`` | Redshift behavior | ``MEDALLION_REDSHIFT_USER`` |
| ``redshift-password`` | Redshift behavior | ``MEDALLION_REDSHIFT_PASSWORD`` |
| ``crm-token`` | CRM accounts | ``MEDALLION_CRM_TOKEN`` |
| ``pii-hash-salt`` | gold's hashed customer ids | ``MEDALLION_PII_HASH_SALT`` |
| ``alert-slack-webhook-url`` | Slack alerts (the token) | ``MEDALLION_ALERT_SLACK_WEBHOOK_URL`` |
| ``alert-smtp-user`` | e-mail alerts, SMTP login | ``MEDALLION_ALERT_SMTP_USER`` |
| ``alert-smtp-password`` | e-mail alerts, SMTP login | ``MEDALLION_ALERT_SMTP_PASSWORD`` |

The SMTP server's address and the alerts' sender are read from the same scope (``alert-smtp-host``,
``alert-smtp-port``, ``alert-smtp-from``, ``alert-smtp-starttls``, ``ALERT_SETTING_KEYS``) but are
not credentials, so they are not redacted: masking a port or ``true`` would garble every text.

A ``SecretProvider`` reads them from one of two places: the workspace's secret scope through
databricks-sdk (``WorkspaceClient().secrets``, authenticated the SDK's usual way, e.g.
``DATABRICKS_HOST`` and ``DATABRICKS_TOKEN``), or the environment. Which one, and with which
local fallbacks, is decided once by ``medallion.lakehouse.environment`` (on Databricks, or anywhere
with ``MEDALLION_SECRETS=workspace``: the workspace). The platform redacts only values read through
``dbutils``, so nothing here ever prints or logs a value; the local runner redacts the local
values from the executed notebooks it keeps (``redact``). No value is a default in code: a
credential that is missing raises ``SecretNotFound`` naming where it was looked for, unless the
caller passes a ``fallback`` or the local target's provider has one (a local stand-in's own
credentials, a generated local secret).
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from medallion.lakehouse.errors import SecretNotFound
from medallion.lakehouse.storage import StorageRoot

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

SCOPE = "medallion"
KEYS = (
    "snowflake-user",
    "snowflake-password",
    "redshift-user",
    "redshift-password",
    "redshift-iam-role",
    "crm-token",
    "pii-hash-salt",
    "alert-slack-webhook-url",
    "alert-smtp-user",
    "alert-smtp-password",
)
# Read from the same scope, but no credentials: not redacted.
ALERT_SETTING_KEYS = (
    "alert-smtp-host", "alert-smtp-port", "alert-smtp-from", "alert-smtp-starttls",
)
# Secrets nobody has to know: the local target generates them once per storage root.
GENERATED_KEYS = ("pii-hash-salt",)
REDACTED = "[REDACTED]"
PROVIDER_ENV = "MEDALLION_SECRETS"  # "workspace": the workspace's scopes even off Databricks

__all__ = ["ALERT_SETTING_KEYS", "GENERATED_KEYS", "KEYS", "REDACTED", "SCOPE", "SecretNotFound",
           "SecretProvider", "env_name", "generated_local_secret", "local_secret_values",
           "redact", "stored_local_secrets"]


def env_name(key: str, scope: str = SCOPE) -> str:
    """The environment variable that holds ``scope/key`` locally: ``MEDALLION_CRM_TOKEN``."""
    prefix = "MEDALLION" if scope == SCOPE else f"MEDALLION_{scope.upper().replace('-', '_')}"
    return f"{prefix}_{key.upper().replace('-', '_')}"


@dataclass(frozen=True)
class SecretProvider:
    """Reads ``scope/key``: from the workspace's secret scope, or from environment variables.

    ``pinned`` values (``medallion`` scope) come first: a local stand-in's own credentials, for
    the endpoint it serves. With ``generated_under`` (a local storage root) a key of
    ``GENERATED_KEYS`` that the provider lacks is generated there (``generated_local_secret``).
    """

    workspace: bool = False
    pinned: Mapping[str, str] = field(default_factory=dict, repr=False)
    generated_under: StorageRoot | None = None

    def get(
        self,
        key: str,
        *,
        scope: str = SCOPE,
        fallback: Callable[[], str | None] | None = None,
    ) -> str | None:
        """The value of ``scope/key``; ``fallback()`` when the provider has none (may be None).

        Raises ``SecretNotFound`` when neither the provider nor a fallback has a value.
        """
        if scope == SCOPE and self.pinned.get(key):
            return self.pinned[key]
        value = self._read(scope, key)
        if value:
            return value
        if fallback is not None:
            return fallback()
        if self.generated_under is not None and scope == SCOPE and key in GENERATED_KEYS:
            return generated_local_secret(self.generated_under, key)
        raise SecretNotFound(
            f"secret {scope}/{key}: expected a value in the {self.where(key, scope)}, found none"
        )

    def where(self, key: str, scope: str = SCOPE) -> str:
        """Where the provider looks for ``scope/key``, for messages."""
        return (f"secret scope {scope!r} of the workspace" if self.workspace
                else f"environment variable {env_name(key, scope)}")

    def _read(self, scope: str, key: str) -> str | None:
        if self.workspace:
            return workspace_secret(scope, key)
        return os.environ.get(env_name(key, scope))


def workspace_secret(
    scope: str, key: str, client: WorkspaceClient | None = None
) -> str | None:
    """``scope/key`` from the workspace's secrets API (``None`` when it holds no such secret).

    The API returns the value base64-encoded; a refusal other than "not found" (no READ
    permission on the scope, bad credentials) is raised as ``SecretNotFound`` naming it.
    """
    from databricks.sdk.errors import NotFound
    from databricks.sdk.errors.base import DatabricksError

    try:
        response = (client or _workspace_client()).secrets.get_secret(scope=scope, key=key)
    except NotFound:
        return None
    except DatabricksError as error:
        raise SecretNotFound(
            f"secret {scope}/{key}: the workspace refused to read it: {type(error).__name__}: "
            f"{error}"
        ) from error
    return base64.b64decode(response.value or "").decode("utf-8") or None


@functools.cache
def _workspace_client() -> WorkspaceClient:
    """One client per process, authenticated the SDK's way (on a cluster: its own identity)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def local_secret_values(extra: Iterable[str | None] = ()) -> list[str]:
    """Every credential value this process can see locally, longest first (for ``redact``)."""
    values = {os.environ.get(env_name(key)) for key in KEYS} | set(extra)
    return sorted((v for v in values if v and len(v) >= 4), key=lambda v: (-len(v), v))


def generated_local_secret(storage_root: StorageRoot, key: str) -> str:
    """A random value for ``key`` made once per local storage root (``_system/secrets/<key>``).

    The local fallback for secrets nobody has to know, such as the PII hash salt: stable across
    runs of one lakehouse, readable only by its owner, never in the repository.
    """
    path = storage_root.system / "secrets" / key
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(f".{os.getpid()}.tmp")
        staged.write_text(secrets.token_hex(32), encoding="utf-8")
        staged.chmod(0o600)
        try:
            os.link(staged, path)  # the first writer wins; a concurrent one reads its value
        except FileExistsError:
            pass
        finally:
            staged.unlink()
    return path.read_text(encoding="utf-8").strip()


def stored_local_secrets(storage_root: StorageRoot | None) -> list[str]:
    """Secrets generated locally for ``storage_root``: generated keys, and the passwords local
    services keep under ``_system/<area>/<service>/password`` (the stand-ins')."""
    if storage_root is None:
        return []
    found = []
    system = storage_root.system
    for path in [*system.glob("*/*/password"), *(system / "secrets").glob("*")]:
        try:
            found.append(path.read_text(encoding="utf-8").strip())
        except OSError:
            continue
    return found


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` replaced by ``[REDACTED]``."""
    for value in values:
        if value:
            text = text.replace(value, REDACTED)
    return text
