"""The LitServe peer: a `LitAPI` that loads the SavedModel and calls its signature.

As LitServe 0.2's documentation writes one: `setup` loads the model in each inference worker
with `tf.saved_model.load`, `decode_request` takes the text from the body `{"text": ...}` of our
`POST /v1/predict` (validated by a pydantic model), `predict` calls `serving_default` on it,
`encode_response` answers the label and probability. `LitServer(accelerator="cpu",
workers_per_device=N)` on one CPU device runs N inference workers, fed by N uvicorn API servers
(LitServe's default `num_api_servers`).

`python -m bench.peers.litserve_api --model-dir DIR --port P --workers N` in `.venv-peers`;
LitServe is not installed in the service's venv, hence the ignores below.
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation as a class
# to validate the body with it.
import argparse
import os
from collections.abc import Sequence
from typing import Any

import litserve  # type: ignore[import-not-found]
from pydantic import BaseModel

from bench.peers import MODEL_DIR_ENV, SIGNATURE, answer


class PredictRequest(BaseModel):
    text: str


class SentimentAPI(litserve.LitAPI):  # type: ignore[misc]
    def setup(self, device: str) -> None:
        import tensorflow as tf

        self.tf = tf
        self.model = tf.saved_model.load(os.environ[MODEL_DIR_ENV])

    def decode_request(self, request: PredictRequest) -> str:
        return request.text

    def predict(self, text: str) -> float:
        signature: Any = self.model.signatures[SIGNATURE]
        return float(signature(text=self.tf.constant([text]))["probability"][0][0])

    def encode_response(self, probability: float) -> dict[str, Any]:
        return answer(probability)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.litserve_api")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ[MODEL_DIR_ENV] = args.model_dir  # the inference workers read it in setup
    server = litserve.LitServer(
        SentimentAPI(), accelerator="cpu", devices=1, workers_per_device=args.workers
    )
    server.run(
        host=args.host,
        port=args.port,
        generate_client_file=False,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
