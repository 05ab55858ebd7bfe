"""What the clients share about connection URLs: their named error, and a URL fit for a message."""

from __future__ import annotations

from medallion.lakehouse.errors import ConfigError

MASK = "***"


class MalformedUrl(ConfigError):
    """A connection URL lacks a part its system needs, or holds one it cannot use."""


def redact_url(url: str) -> str:
    """``url`` with the password of its user info replaced by ``***``, for messages.

    Everything between the first ``:`` of the user info and its last ``@`` is masked, so a
    password holding an unescaped ``/`` or ``@`` is masked whole too.
    """
    scheme, separator, rest = url.partition("://")
    userinfo, at, host_and_path = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (separator and at and colon):
        return url
    return f"{scheme}://{user}:{MASK}@{host_and_path}"
