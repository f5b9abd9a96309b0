"""The API key check every transport uses: REST headers and gRPC metadata present it alike."""

from __future__ import annotations

import pytest

from app.core.auth import ApiKeyCheck, bearer_token
from app.core.errors import UnauthorizedError


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        ("Bearer s3cret", "s3cret"),
        ("bearer s3cret", "s3cret"),
        ("BEARER s3cret", "s3cret"),
        ("Basic s3cret", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_reads_the_authorization_value_as_http_bearer_does(
    authorization: str | None, token: str | None
) -> None:
    assert bearer_token(authorization) == token


def test_the_key_is_taken_from_the_api_key_first_then_the_bearer_token() -> None:
    check = ApiKeyCheck("s3cret")
    assert check.required
    check.check_headers("s3cret", None)
    check.check_headers(None, "Bearer s3cret")
    check.check_headers("s3cret", "Bearer wrong")  # the API key header wins, as over REST
    for api_key, authorization in [
        (None, None),
        ("wrong", None),
        ("wrong", "Bearer s3cret"),
        (None, "Bearer wrong"),
        (None, "Basic s3cret"),
        ("s3cre", None),
        ("\udcff", None),  # never a 500 for bytes that are not text
    ]:
        with pytest.raises(UnauthorizedError):
            check.check_headers(api_key, authorization)


def test_without_a_key_every_request_passes() -> None:
    check = ApiKeyCheck(None)
    assert not check.required
    check.check_headers(None, None)
    check.check(None)
