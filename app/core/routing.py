"""The canary split: which unversioned requests go to the ``canary`` label instead of ``stable``.

Chosen per request, so every request is scored by exactly one version. A request that carries a
request id (REST ``X-Request-ID``, gRPC ``x-request-id`` metadata) is placed by a hash of that
id, the same in every worker, pod and restart: a client that retries with the same id never
flaps between versions. Without an id the choice is a fresh random draw.

Only built when ``SENTIMENT_CANARY_PERCENT`` is above 0: without a canary, unversioned requests
never reach this module.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

_HASH_RANGE = float(2**64)


class CanarySplit:
    """Sends ``percent`` % of the requests it is asked about to the canary."""

    def __init__(self, percent: float, draw: Callable[[], float] = random.random) -> None:
        self.percent = percent
        self._share = percent / 100
        self._draw = draw

    def takes(self, request_id: str | None) -> bool:
        """Whether this request goes to the canary (sticky when it has an id)."""
        if request_id is None:
            return self._draw() < self._share
        return sticky_fraction(request_id) < self._share


def sticky_fraction(request_id: str) -> float:
    """Where ``request_id`` falls in [0, 1): uniform over ids, and stable across processes
    (Python's own ``hash`` of a string changes with every process)."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_RANGE
