"""The real gRPC clients, each run in a process of its own by tests/app/test_grpc.py.

tritonclient.grpc and the KServe SDK each compile their own copy of the Open Inference
Protocol's package ``inference``, and protobuf refuses a second copy in one process, so each
runs here, unchanged, as ``python -m tests.app.grpc_clients {triton,kserve} HOST:PORT TEXT...``
and prints what it got as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np


def triton(address: str, texts: list[str]) -> dict[str, Any]:
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(url=address)
    try:
        metadata = client.get_model_metadata("sentiment", as_json=True)
        text = triton_grpc.InferInput("text", [len(texts)], "BYTES")
        text.set_data_from_numpy(np.array(texts, dtype=np.object_))
        result = client.infer("sentiment", [text], request_id="r1")
        wanted = [triton_grpc.InferRequestedOutput("probability")]
        only = client.infer("sentiment", [text], outputs=wanted)
        try:
            client.infer("sentiment", [text], model_version="99")
            unknown_version = "answered"
        except triton_grpc.InferenceServerException as exc:
            unknown_version = str(exc.status())
        return {
            "live": client.is_server_live(),
            "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready("sentiment"),
            "metadata": metadata,
            "probability": result.as_numpy("probability").tolist(),
            "logit": result.as_numpy("logit").tolist(),
            "dtype": str(result.as_numpy("probability").dtype),
            "id": result.get_response().id,
            "version": result.get_response().model_version,
            "only_logit": None if only.as_numpy("logit") is None else "present",
            "unknown_version": unknown_version,
        }
    finally:
        client.close()


def kserve(address: str, texts: list[str]) -> dict[str, Any]:
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def calls() -> dict[str, Any]:
        client = InferenceGRPCClient(address, timeout=30, retries=0)
        try:
            request = InferRequest(
                model_name="sentiment",
                infer_inputs=[InferInput("text", [len(texts)], "BYTES", data=texts)],
            )
            response = await client.infer(request)
            outputs = {output.name: output for output in response.outputs}
            return {
                "model_ready": await client.is_model_ready("sentiment"),
                "server_ready": await client.is_server_ready(),
                "probability": outputs["probability"].as_numpy().reshape(-1).tolist(),
                "shape": list(outputs["probability"].shape),
            }
        finally:
            await client.close()

    return asyncio.run(calls())


if __name__ == "__main__":
    client_name, target, *given = sys.argv[1:]
    answer = {"triton": triton, "kserve": kserve}[client_name](target, given)
    sys.stdout.write(json.dumps(answer) + "\n")
