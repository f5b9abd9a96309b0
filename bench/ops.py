"""Where a version's serving signature spends its CPU, op by op: `python -m bench.ops DIR`.

`bench.versions` says what a graph costs; this says where. The only API that reports per-op
timings is TensorFlow 1's: the SavedModel is loaded into a `tf.compat.v1.Session` and the
signature the service calls (`score` where it exists) runs on batches of real IMDB test reviews
with one thread and a full trace (`RunMetadata`). The first pass over the texts warms up and is
not counted. Op names are their node names without the function scope, so ops of one kind in
one function add up. The trace itself slows every op a little: compare ops with each other, and
graphs with `bench.versions`.

`--by-stage` adds up the ops of each name scope instead: graphs exported since the serving
graph was split into stages (`training.units`: standardize, split, word_lookup, unknown_tokens,
negation, ngrams, pooling, calibration) name every op after its stage. Older graphs have no
stages: their ops are listed under their own names.
"""

from __future__ import annotations

import argparse
import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO_ROOT
from bench.texts import DEFAULT_DATA, load_review_texts
from contract import SCORE_SIGNATURE_NAME, SIGNATURE_NAME

logger = logging.getLogger("bench.ops")


@dataclass(frozen=True)
class OpCost:
    name: str
    op_type: str
    microseconds_per_text: float


@dataclass(frozen=True)
class OpProfile:
    signature: str
    ops: list[OpCost]
    # The same time per name scope (the stage) of the op, largest first.
    stages: list[tuple[str, float]] = field(default_factory=list)


_FUNCTION_CALL_PREFIXES = ("StatefulPartitionedCall", "PartitionedCall")


def stage_of(node_name: str) -> str:
    """The first name scope inside the signature's function ("ngrams" for
    ".../StatefulPartitionedCall/ngrams/ngram_lookup/LookupTableFindV2"), or the node's own
    name when it has none."""
    parts = node_name.split("/")
    while len(parts) > 1 and parts[0].startswith(_FUNCTION_CALL_PREFIXES):
        parts = parts[1:]
    return parts[0]


def op_costs(version_dir: Path, texts: Sequence[str], batch_size: int) -> OpProfile:
    """Each op's traced time per text over one pass of `texts`, largest first."""
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
    )
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph, config=config) as session:
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        signatures = meta_graph.signature_def
        name = SCORE_SIGNATURE_NAME if SCORE_SIGNATURE_NAME in signatures else SIGNATURE_NAME
        signature = signatures[name]
        (text_input,) = signature.inputs.values()
        fetches = [output.name for output in signature.outputs.values()]
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        totals: collections.Counter[tuple[str, str]] = collections.Counter()
        stages: collections.Counter[str] = collections.Counter()
        for counted in (False, True):
            for start in range(0, len(texts), batch_size):
                metadata = tf.compat.v1.RunMetadata()
                batch = list(texts[start : start + batch_size])
                session.run(
                    fetches, {text_input.name: batch}, options=options, run_metadata=metadata
                )
                if not counted:
                    continue
                for device in metadata.step_stats.dev_stats:
                    for node in device.node_stats:
                        label = node.timeline_label
                        op_type = (
                            label.split(" = ", 1)[1].split("(", 1)[0] if " = " in label else ""
                        )
                        duration = node.op_end_rel_micros - node.op_start_rel_micros
                        totals[(node.node_name.rsplit("/", 1)[-1], op_type)] += duration
                        stages[stage_of(node.node_name)] += duration
    ops = [
        OpCost(node, op_type, micros / len(texts))
        for (node, op_type), micros in totals.most_common()
    ]
    by_stage = [(stage, micros / len(texts)) for stage, micros in stages.most_common()]
    return OpProfile(name, ops, by_stage)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__)
    parser.add_argument("version", type=Path, help="a version directory")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / DEFAULT_DATA)
    parser.add_argument("--texts", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--top", type=int, default=25, help="how many ops (or stages) to list")
    parser.add_argument(
        "--by-stage", action="store_true", help="add up ops per name scope (stage), not per op"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    profile = op_costs(args.version, load_review_texts(args.data, args.texts), args.batch_size)
    logger.info(
        "%s, `%s`, batches of %d: %.1f us per text in all ops",
        args.version,
        profile.signature,
        args.batch_size,
        sum(cost.microseconds_per_text for cost in profile.ops),
    )
    if args.by_stage:
        logger.info("| us per text | stage |")
        logger.info("|---:|---|")
        for stage, micros in profile.stages[: args.top]:
            logger.info("| %.2f | %s |", micros, stage)
        return
    logger.info("| us per text | op | node |")
    logger.info("|---:|---|---|")
    for cost in profile.ops[: args.top]:
        logger.info("| %.2f | %s | %s |", cost.microseconds_per_text, cost.op_type, cost.name)


if __name__ == "__main__":
    main()
