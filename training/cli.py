"""`python -m training --help`: the command line that builds a `RunConfig` and runs it.

Every `Hyperparameters` field is an option of its own (`--max-tokens`, `--ngrams`, ...) that
overrides the chosen preset, so a new knob needs no new command-line code.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from training import corpora, mixing
from training import export as export_lib
from training import gate as gate_lib
from training import publish as publish_lib
from training.behavioural import BEHAVIOUR_DIR, BehaviouralSetError
from training.config import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL_NAME,
    DEFAULT_OUTPUT_DIR,
    PRESET_MIXES,
    SHARED_DATASETS,
    DataSettings,
    OutputSettings,
    ReportSettings,
    RunConfig,
    default_datasets,
)
from training.model import DEFAULT_PRESET, PRESETS, Hyperparameters
from training.run import run
from training.vectorize import VocabularyError

logger = logging.getLogger("training")

# Exit codes: the run's outcome for scripts and Kubernetes Jobs.
EXIT_PUBLISHED = 0
EXIT_BAD_INPUT = 2  # the data, a behavioural set or the export could not be used
EXIT_REFUSED = 3  # the promotion gate refused the new version
# Hyperparameters with an option of their own below, not the generic one.
_OWN_OPTION = {"early_stopping_patience"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the sentiment model on a mix of labelled corpora (IMDB and the "
        "registered corpora by default, or your own data) and publish a SavedModel version under "
        "OUTPUT_DIR/NAME/<version>/ if it passes the promotion gate.",
    )
    parser.add_argument(
        "--mix",
        default=None,
        help="the corpora to train on and their weights: a mix file (JSON, see "
        "training/mixes/default.json) or the name of a shipped one (default, imdb). Default: "
        "the preset's (default: every registered corpus; tutorial: imdb)",
    )
    parser.add_argument(
        "--datasets",
        default=None,
        help="directory (or http(s) base URL) holding the registered corpora "
        f"(default: {SHARED_DATASETS} when it exists, else ./datasets); IMDB not found there "
        "is downloaded from its official URL",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="your own labelled texts: a CSV / JSON Lines file of text,label rows (label 0/1 or "
        "negative/positive; .gz allowed), an aclImdb .tar.gz or directory, or a URL of one. "
        "Trained on alone, or added to --mix when one is given",
    )
    parser.add_argument(
        "--domain",
        default=None,
        help="what --data's texts are about, reported per domain in the card (default: movie "
        "for IMDB, else the file's name)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where downloads and refused exports are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help="model base directory (default: %(default)s)",
    )
    parser.add_argument(
        "--name", default=DEFAULT_MODEL_NAME, help="model name (default: %(default)s)"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="hyperparameter preset (default: %(default)s)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="keep about N rows of each corpus (all splits; chosen by the text's hash): quick runs",
    )
    for field in dataclasses.fields(Hyperparameters):
        if field.name in _OWN_OPTION:
            continue
        parser.add_argument(
            f"--{field.name.replace('_', '-')}",
            type=_parse_bool if isinstance(field.default, bool) else type(field.default),
            default=None,
            help=f"override the preset (tutorial: {field.default}, "
            f"default: {getattr(PRESETS['default'], field.name)})",
        )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early-stopping patience in epochs: validation accuracy against the linear "
        "start's when the preset starts from one (default preset), validation loss otherwise",
    )
    parser.add_argument(
        "--fixed-epochs", action="store_true", help="train exactly --epochs, no early stopping"
    )
    parser.add_argument(
        "--gate-tolerance",
        type=float,
        default=gate_lib.DEFAULT_TOLERANCE,
        help="test accuracy may trail the live version on a domain (or more, by the domain's "
        "sampling noise) and the best baseline on the mean by this much (default: %(default)s)",
    )
    parser.add_argument(
        "--max-ece",
        type=float,
        default=gate_lib.DEFAULT_MAX_ECE,
        help="largest test ECE above its sampling floor the gate accepts on each domain "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="publish even if the promotion gate refuses"
    )
    parser.add_argument(
        "--behavioural-set",
        type=Path,
        default=BEHAVIOUR_DIR,
        help="hand-written JSON Lines texts (text, label, kind, optional subkind and domain), "
        "or a directory of such sets, each reported per kind in the card; evaluation only "
        "(default: the sets shipped in training/behaviour/)",
    )
    parser.add_argument("--quiet", action="store_true", help="no Keras progress output")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def hyperparameters_from(args: argparse.Namespace) -> Hyperparameters:
    params = PRESETS[args.preset]
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(Hyperparameters)
        if getattr(args, f.name, None) is not None
    }
    if args.patience is not None:
        overrides["early_stopping_patience"] = args.patience
    if args.fixed_epochs:
        overrides["early_stopping_patience"] = None
    return dataclasses.replace(params, **overrides)


def mix_from(args: argparse.Namespace) -> mixing.Mix:
    """--mix (a file or a shipped name), --data alone, or --data added to --mix."""
    own = None if args.data is None else mixing.mix_of(args.data, args.domain)
    if args.mix is None:
        return own or mixing.default_mix(PRESET_MIXES[args.preset])
    named = (mixing.MIXES_DIR / f"{args.mix}.json").is_file() and "/" not in args.mix
    mix = mixing.default_mix(args.mix) if named else mixing.load_mix(Path(args.mix))
    return mix if own is None else mix.with_entry(own.entries[0])


def config_from(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        params=hyperparameters_from(args),
        preset=args.preset,
        data=DataSettings(
            mix_from(args),
            args.datasets or default_datasets(),
            args.cache_dir,
            args.limit,
        ),
        output=OutputSettings(args.output_dir, args.name),
        gate=gate_lib.GateSettings(args.gate_tolerance, args.max_ece, args.force),
        report=ReportSettings(args.behavioural_set, verbose=0 if args.quiet else 2),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level.upper() != "DEBUG":  # TensorFlow's export notices, shown when debugging
        for chatty in ("absl", "tensorflow"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        run(config_from(args))
    except (
        corpora.DataError,
        VocabularyError,
        BehaviouralSetError,
        export_lib.ExportError,
        publish_lib.PublishError,
    ) as exc:
        logger.error("%s", exc)
        return EXIT_BAD_INPUT
    except gate_lib.GateRefused as exc:
        logger.error("%s", exc)
        return EXIT_REFUSED
    return EXIT_PUBLISHED
