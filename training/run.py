"""One training run, top to bottom: data → vectorize → model → train → calibrate → refit →
evaluate → export → publish. Each step is a function of its own module; this only orders them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import keras

from training import baselines as baselines_lib
from training import behavioural as behavioural_lib
from training import card as card_lib
from training import data as data_lib
from training import evaluation as evaluation_lib
from training import export as export_lib
from training import fit as fit_lib
from training import gate as gate_lib
from training import publish as publish_lib
from training.config import RunConfig

logger = logging.getLogger("training")


def run(config: RunConfig) -> Path:
    """One training run; returns the published version directory or raises GateRefused."""
    started = time.perf_counter()
    params, verbose = config.params, config.report.verbose
    keras.utils.set_random_seed(params.seed)
    # Read now so that a malformed set fails the run before training, not after; the texts are
    # scored only once the model is final.
    behavioural_sets = behavioural_lib.load_sets(config.report.behavioural_sets)

    # data
    dataset, splits = data_lib.load_splits(
        config.data.source,
        config.data.cache_dir,
        params.validation_fraction,
        params.seed,
        config.data.limit,
    )

    # vectorize, model and train: every setting chosen on the validation split
    held_out = fit_lib.fit_choosing_on_validation(params, splits, verbose)

    # calibrate (validation reviews and validation snippets only)
    scored = {
        "validation": evaluation_lib.score_ids(
            held_out.model, held_out.validation_ids, splits.validation.labels
        ),
        "validation_snippets": evaluation_lib.score_ids(
            held_out.model, held_out.validation_snippet_ids, splits.validation_snippets.labels
        ),
        "test": evaluation_lib.score_split(
            held_out.vectorizer, held_out.model, params, splits.test
        ),
    }
    calibration = evaluation_lib.fit_calibration(
        params.calibration, [scored["validation"], scored["validation_snippets"]]
    )
    logger.info("Calibration (%s): %s", params.calibration, calibration)

    # refit: the chosen settings fitted again on every training review, calibration kept
    final = held_out
    if params.refit:
        final = fit_lib.refit(params, splits.fit + splits.validation, held_out, verbose)
        scored["test_before_refit"] = scored["test"]
        scored["test"] = evaluation_lib.score_split(
            final.vectorizer, final.model, params, splits.test
        )

    # evaluate
    evaluation = evaluation_lib.Evaluation(
        metrics=evaluation_lib.metrics_by_split(scored, calibration),
        baselines=baselines_lib.fit_baselines(
            splits.fit, splits.validation, splits.test, refit=params.refit
        ),
        live=evaluation_lib.score_live_version(config.output.model_dir, splits.test),
    )

    # export, verify and publish
    trained = export_lib.TrainedModel(params, final.vectorizer, final.model, calibration)
    staging = publish_lib.create_staging_dir(config.output.model_dir)
    try:
        export_lib.write_saved_model(trained, staging)
        samples = card_lib.pick_samples(splits.test, params.seed)
        served = export_lib.verify_export(staging, samples, trained.reference(samples))
        card_lib.plot_history(held_out.training.history, staging / card_lib.CURVES_FILE)
        behaviour = behavioural_lib.report(behavioural_sets, export_lib.load_scorer(staging))
        evaluation = dataclasses.replace(evaluation, behaviour=behaviour)
        decision = gate_lib.decide(
            evaluation.test_accuracy,
            evaluation.test_ece,
            evaluation.live,
            evaluation.baseline_accuracies(),
            config.gate,
        )
        card = card_lib.model_card(
            config,
            dataset,
            held_out.training,
            calibration,
            evaluation,
            list(zip(samples, served.tolist(), strict=True)),
            decision,
        )
        if not decision.publish:
            refused = publish_lib.keep_refused(
                staging, config.data.cache_dir, config.output.name, card
            )
            for check in decision.failures():
                logger.error("Gate check %s failed: %s", check.name, check.detail)
            raise gate_lib.GateRefused(
                f"the promotion gate refused the new version (kept at {refused})"
            )
        if not decision.passed:
            logger.warning("Gate failed but --force given: publishing anyway")
        version_dir = publish_lib.publish(staging, config.output.model_dir, card)
    except BaseException:
        publish_lib.discard(staging)
        raise
    logger.info("Done in %.1f s: %s", time.perf_counter() - started, version_dir)
    return version_dir
