"""The BentoML peer: a `@bentoml.service` that loads the SavedModel and calls its signature.

The service as BentoML 1.4's documentation writes one: the model loaded in `__init__` (once per
worker process) with `tf.saved_model.load`, a synchronous `@bentoml.api` taking the text (the
body `{"text": ...}` of our `POST /v1/predict`) and answering the label and probability,
`workers=N` from the benchmark, BentoML's defaults otherwise (`threads=1`: one call at a
time per worker). One text per call: no adaptive batching. Access log off, as for every server.

Served by `bentoml serve bench.peers.bentoml_service:SentimentService` (see bench.peers) in
`.venv-peers`; BentoML is not installed in the service's venv, hence the ignores below.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml  # type: ignore[import-not-found]

from bench.peers import MODEL_DIR_ENV, SIGNATURE, WORKERS_ENV, answer


@bentoml.service(workers=int(os.environ.get(WORKERS_ENV, "1")))
class SentimentService:
    def __init__(self) -> None:
        import tensorflow as tf

        self.model = tf.saved_model.load(os.environ[MODEL_DIR_ENV])
        self.tf = tf

    @bentoml.api  # type: ignore[untyped-decorator]
    def predict(self, text: str) -> dict[str, Any]:
        signature: Any = self.model.signatures[SIGNATURE]
        probability = float(signature(text=self.tf.constant([text]))["probability"][0][0])
        return answer(probability)
