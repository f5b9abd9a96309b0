"""Running a version's signatures on the calling thread: a Session with the inline executor.

Why: a signature of an eagerly loaded SavedModel (``tf.saved_model.load``) runs its function
on TensorFlow's inter-op thread pool while the caller waits, so every call wakes a pool
thread and then the caller: a fixed cost per call, whatever the batch, that on a virtual
machine rivals a short text's whole graph (docs/benchmark.md, "The model call's fixed cost").
A TensorFlow 1 ``Session`` configured with ``SINGLE_THREADED_EXECUTOR`` runs every kernel on
the thread that calls it, the micro-batcher's model thread, so a call costs its ops alone.
The graph, its tables and its answers are the SavedModel's own: only who runs it changes.

Control flow (``If``, ``While``) runs its branches as functions on the inter-op thread pool
even there, and with a pool of one thread a graph that scores through ``StatelessIf``
(versions 3 to 7) hangs instead of failing. So ``load_inline`` reads every op the signatures
that score traffic (``hot``) can reach, functions included, and returns None when one is
control flow: the predictor then loads that version eagerly, as before. The other signatures
(``explain`` and its ragged shape checks) may hold control flow: the session gets at least
``MIN_INTER_OP_THREADS`` pool threads for them.

Memory: the loader's usual ``session.run`` of the table initializer would keep that run's
executor, and with it the initializer's constants (the whole vocabulary), cached for the
session's life. The initializer runs through a callable released at once instead; the
predictor hands the freed heap back to the system once the version is warm
(``return_freed_memory``).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import SCORE_SIGNATURE_NAME, SIGNATURE_NAME

logger = logging.getLogger(__name__)

SERVE_TAG = "serve"
INLINE_EXECUTOR = "SINGLE_THREADED_EXECUTOR"
MIN_INTER_OP_THREADS = 2  # one pool thread for a branch while another waits (see above)
# Ops the inline executor cannot run (functional control flow and its lowered form).
CONTROL_FLOW_OPS = frozenset(
    {
        "If",
        "StatelessIf",
        "While",
        "StatelessWhile",
        "Case",
        "StatelessCase",
        "Switch",
        "Merge",
        "Enter",
        "Exit",
        "NextIteration",
        "LoopCond",
        "RefSwitch",
        "RefMerge",
        "RefEnter",
        "RefExit",
    }
)

Outputs = dict[str, npt.NDArray[Any]]


class InlineSignature:
    """One signature as a callable: ``signature(text=array)`` → its outputs as numpy arrays.

    The same call shape as a loaded signature's, so the predictor, the explainer and the input
    metrics take either (they read outputs with ``np.asarray``). The session's callable (an
    executor with its own copy of the graph) is made on the first call: a version only pays
    memory for the signatures it is asked for (``score``, and ``explain`` once explained).
    """

    def __init__(self, session: Any, signature: Any) -> None:
        from tensorflow.core.protobuf import config_pb2

        if len(signature.inputs) != 1:
            raise ValueError("a signature with more than one input")
        [(self._input_name, input_info)] = signature.inputs.items()
        self._outputs = list(signature.outputs)
        self._options = config_pb2.CallableOptions(
            feed=[input_info.name], fetch=[signature.outputs[n].name for n in self._outputs]
        )
        self._session = session
        self._call: Callable[..., list[Any]] | None = None
        self._lock = threading.Lock()

    def __call__(self, **inputs: Any) -> Outputs:
        call = self._call
        if call is None:
            with self._lock:
                if self._call is None:
                    # The session's own callable: arrays in, arrays out, no Python feed
                    # handling per call (``make_callable`` with a feed goes through ``run``).
                    self._call = self._session._make_callable_from_options(self._options)
                call = self._call
        values = call(inputs[self._input_name])
        return dict(zip(self._outputs, values, strict=True))


class InlineModel:
    """A SavedModel loaded into its own Session; ``signatures`` as on a loaded object."""

    def __init__(self, session: Any, signatures: dict[str, InlineSignature]) -> None:
        self.session = session  # owns the graph, the tables and the callables
        self.signatures = signatures


def text_input(texts: Sequence[str]) -> npt.NDArray[np.object_]:
    """A batch of texts as the Session feeds it (a string tensor [N])."""
    return np.array(list(texts), dtype=object).reshape(len(texts))


def load_saved_model(path: Path, eager: bool = False) -> tuple[Any, Callable[[Sequence[str]], Any]]:
    """The version in ``path`` as the service runs it, and what turns texts into its input.

    An ``InlineModel`` where its scoring signatures allow, else ``tf.saved_model.load`` (or
    that in any case with ``eager``, to compare); both have ``signatures`` by name. TensorFlow's
    thread settings are the process's (``tf.config.threading``, set by its entry point).
    """
    import tensorflow as tf

    if not eager:
        inline = load_inline(
            path,
            hot=(SCORE_SIGNATURE_NAME, SIGNATURE_NAME),
            intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),
            inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        )
        if inline is not None:
            return inline, text_input

    def eager_input(texts: Sequence[str]) -> Any:
        return tf.constant(list(texts), dtype=tf.string)

    return tf.saved_model.load(str(path)), eager_input


def load_inline(
    path: Path, hot: Sequence[str], intra_op_threads: int, inter_op_threads: int
) -> InlineModel | None:
    """``path``'s signatures in a Session with the inline executor, or None where one of the
    ``hot`` signatures reaches control flow (the caller loads that version eagerly).

    Thread counts as ``tf.config.threading`` gives them (0: TensorFlow's default)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.saved_model import loader_impl

    loader = loader_impl.SavedModelLoader(str(path))
    meta_graph = loader.get_meta_graph_def_from_tags([SERVE_TAG])
    signature_defs = {
        name: signature
        for name, signature in meta_graph.signature_def.items()
        if not name.startswith("__")  # the loader's own entries (the initializer)
    }
    hot_defs = [signature_defs[name] for name in hot if name in signature_defs]
    if not hot_defs or reaches_control_flow(meta_graph, hot_defs):
        return None
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=intra_op_threads,
        inter_op_parallelism_threads=(
            max(inter_op_threads, MIN_INTER_OP_THREADS) if inter_op_threads else 0
        ),
    )
    config.experimental.executor_type = INLINE_EXECUTOR
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    with graph.as_default():
        saver, _ = loader.load_graph(graph, [SERVE_TAG])
        if saver is not None:
            loader.restore_variables(session, saver)
        assets = loader_impl.get_asset_tensors(str(path), meta_graph)
        initializer = loader_impl.get_init_op(meta_graph)
    if initializer is not None:
        options = config_pb2.CallableOptions()
        options.target.append(initializer.name)
        feeds = [graph.get_tensor_by_name(name) for name in assets]
        options.feed.extend(tensor.name for tensor in feeds)
        initialize = session._make_callable_from_options(options)
        initialize(*[assets[tensor.name] for tensor in feeds])
        del initialize  # releases its executor and the constants it held
    signatures = {
        name: InlineSignature(session, signature) for name, signature in signature_defs.items()
    }
    return InlineModel(session, signatures)


def reaches_control_flow(meta_graph: Any, signatures: Iterable[Any]) -> bool:
    """Whether an op reachable from the signatures' outputs, inside functions too, is
    control flow (a function called is read whole: a conservative answer)."""
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    pending = [
        tensor.name.split(":")[0].lstrip("^")
        for signature in signatures
        for tensor in signature.outputs.values()
    ]
    seen_nodes: set[str] = set()
    called: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen_nodes or name not in nodes:
            continue
        seen_nodes.add(name)
        node = nodes[name]
        if node.op in CONTROL_FLOW_OPS:
            return True
        called.extend(_functions_called(node))
        pending.extend(source.split(":")[0].lstrip("^") for source in node.input)
    seen_functions: set[str] = set()
    while called:
        name = called.pop()
        if name in seen_functions:
            continue
        seen_functions.add(name)
        if name not in functions:
            continue
        for node in functions[name].node_def:
            if node.op in CONTROL_FLOW_OPS:
                return True
            called.extend(_functions_called(node))
    return False


def _functions_called(node: Any) -> Iterator[str]:
    """The functions a node names in its attributes (a call's ``f``, a branch, a body)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        elif value.HasField("list"):
            yield from (function.name for function in value.list.func)


def return_freed_memory() -> None:
    """Give the heap freed by loading back to the system (glibc); a no-op elsewhere."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        logger.debug("malloc_trim is not available; freed memory stays with the process")
