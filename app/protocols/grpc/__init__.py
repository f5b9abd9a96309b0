"""gRPC beside REST, on the app's event loop and scoring core (``GrpcProtocol``).

Served on ``SENTIMENT_GRPC_PORT``: TF Serving's ``PredictionService`` and ``ModelService``
(``tfserving``), the Open Inference Protocol's ``GRPCInferenceService`` (``open_inference``),
``grpc.health.v1.Health`` following readiness (``health``) and server reflection. The
protocol definitions are the published ones (``protos/README.md``); ``calls`` holds what every
method shares (API key, errors as status codes, metrics, access log).

Importing this package imports neither TensorFlow nor the protocols' modules: the server
builds them when it starts, once a model (and so TensorFlow) is loaded.
"""

from app.protocols.grpc.server import GrpcProtocol

__all__ = ["GrpcProtocol"]
