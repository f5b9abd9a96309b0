"""The scoring core: model versions, limits, micro-batching, explanations and the error types.

Nothing here knows HTTP or any wire protocol; the adapters in ``app.protocols`` do.
"""
