"""``grpc.health.v1.Health`` following the core's readiness, and server reflection.

Readiness is the core's (``check_ready``): SERVING once a verified model is live, NOT_SERVING
from the moment SIGTERM arrives (and while no version is live), the same answer as REST
``/readyz``, for the whole server (service ``""``) and for each service by name; an unknown
name is NOT_FOUND (``Check``) or SERVICE_UNKNOWN (``Watch``), as the health protocol says.
Kubernetes' native gRPC probe calls ``Check``. ``Watch`` sends the status, then each change
(looked at every ``WATCH_INTERVAL_SECONDS``), and ends when the server stops, so an open
watch never holds up the drain. Health and reflection need no API key, like the REST probes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from app.core.errors import ModelNotFoundError, NotReadyError
from app.protocols.grpc.calls import Context, Method, Service

if TYPE_CHECKING:
    from app.protocols.grpc.server import GrpcProtocol

WATCH_INTERVAL_SECONDS = 0.5
SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer:
    """Health answers for the server and each of its services."""

    def __init__(self, protocol: GrpcProtocol, services: Sequence[str]) -> None:
        self._protocol = protocol
        self._known = {"", SERVICE.full_name, reflection.SERVICE_NAME, *services}

    def _status(self, service: str) -> int:
        if service not in self._known:
            return _SERVICE_UNKNOWN
        try:
            self._protocol.core.check_ready()
        except NotReadyError:
            return _NOT_SERVING
        return _SERVING

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        status = self._status(request.service)
        if status == _SERVICE_UNKNOWN:
            raise ModelNotFoundError("Unknown service name.")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        stopping = self._protocol.stopping
        sent = None
        while True:
            status = self._status(request.service)
            if status != sent:
                yield health_pb2.HealthCheckResponse(status=status)
                sent = status
            if stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), WATCH_INTERVAL_SECONDS)


def service(protocol: GrpcProtocol, services: Sequence[str]) -> Service:
    """The health service and its methods (open: no API key), for the server to register."""
    servicer = HealthServicer(protocol, services)
    return SERVICE, {
        "Check": Method(servicer.Check, guarded=False),
        "Watch": Method(servicer.Watch, guarded=False),
    }


def enable_reflection(server: grpc.aio.Server, services: Sequence[Any]) -> None:
    """Server reflection listing ``services`` (their descriptors) and itself.

    Reflection answers from one descriptor pool, and the Open Inference Protocol lives in a
    pool of its own (``open_inference.load_protocol``), so the answers come from a pool that
    holds a copy of every served file and its imports.
    """
    reflection_service = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
    served = [*services, reflection_service]
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: Any) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        copy = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(copy)
        pool.Add(copy)
        added.add(file.name)

    for service_descriptor in served:
        add(service_descriptor.file)
    names = [service_descriptor.full_name for service_descriptor in served]
    reflection.enable_server_reflection(names, server, pool=pool)
