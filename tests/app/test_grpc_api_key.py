"""What the API key leaves open, REST and gRPC, is what SENTIMENT_API_KEY's description says.

The description is the operator's documentation (the README's settings table is generated from
it), so it is checked by value against the routes and methods the app registers: every open
REST path is named and no guarded one is; the open gRPC methods are named too. Building the
app and the gRPC services loads no model.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import Route

from app.main import API_VERSION, create_app
from app.metrics import ServiceMetrics
from app.protocols.grpc import GrpcProtocol
from app.settings import Settings

# A path as the description writes it: from a slash to the next space, comma or bracket.
NAMED_PATH = re.compile(r"(?<![\w'])/[^\s,()]*")


def _description() -> str:
    description = Settings.model_fields["api_key"].description
    assert description is not None
    return description


@pytest.fixture
def keyed_app(model_base: Path) -> FastAPI:
    """An app with a key (not started: nothing is loaded)."""
    return create_app(Settings(model_base_path=model_base, api_key=SecretStr("k"), grpc_port=0))


def test_the_description_names_exactly_the_open_rest_paths(keyed_app: FastAPI) -> None:
    app = keyed_app
    api_routes = [route for route in app.routes if isinstance(route, APIRoute)]
    open_paths = {route.path for route in api_routes if not route.dependencies}
    # FastAPI's own pages (the docs and the schema) take no dependencies at all; a page under
    # one of them (/docs/oauth2-redirect) goes with it.
    framework = {
        route.path
        for route in app.routes
        if isinstance(route, Route) and not isinstance(route, APIRoute)
    }
    framework_pages = {
        path for path in framework if not any(path.startswith(f"{q}/") for q in framework)
    }
    assert open_paths  # health, readiness, metrics, the playground page...
    assert set(NAMED_PATH.findall(_description())) == open_paths | framework_pages


def test_the_description_names_the_open_grpc_methods(keyed_app: FastAPI) -> None:
    from app.protocols.grpc import health, open_inference, tfserving

    protocol = GrpcProtocol(keyed_app.state.core, ServiceMetrics(), API_VERSION)
    open_methods = {
        name
        for _, methods in [*tfserving.services(protocol), *open_inference.services(protocol)]
        for name, method in methods.items()
        if not method.guarded
    }
    _, health_methods = health.service(protocol, [])
    assert not any(method.guarded for method in health_methods.values())
    description = _description()
    assert open_methods == {"ServerLive", "ServerReady"}
    for named in (*open_methods, "health", "reflection", "x-api-key", "Bearer"):
        assert named in description, named
