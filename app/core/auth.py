"""The API key check, for every transport: REST headers and gRPC metadata present it alike.

A client presents the key as ``X-API-Key: <key>`` (gRPC: ``x-api-key``) or as
``Authorization: Bearer <key>`` (gRPC: ``authorization``); the REST dependency in
``app.protocols.base`` is a thin wrapper over ``ApiKeyCheck.check``.
"""

from __future__ import annotations

import hmac

from app.core.errors import UnauthorizedError


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of ``Bearer <token>`` (scheme case-insensitive), as FastAPI's HTTPBearer
    reads an Authorization header; None for a missing header or another scheme."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


class ApiKeyCheck:
    """Whether a request presented the configured key; with no key configured, every one did."""

    def __init__(self, key: str | None) -> None:
        self._expected = key.encode() if key else None

    @property
    def required(self) -> bool:
        """Whether a key is configured (routes are then guarded)."""
        return self._expected is not None

    def check(self, presented: str | None) -> None:
        """UnauthorizedError unless ``presented`` is the key (compared in constant time)."""
        expected = self._expected
        if expected is None:
            return
        if presented is None or not hmac.compare_digest(
            presented.encode("utf-8", "surrogatepass"), expected
        ):
            raise UnauthorizedError()

    def check_headers(self, api_key: str | None, authorization: str | None) -> None:
        """``check`` for raw headers or metadata: the API key header first, else a bearer token."""
        self.check(api_key if api_key is not None else bearer_token(authorization))
