"""One training run, top to bottom: data → vectorize → model → train → calibrate → refit →
evaluate → export → publish. Each step is a function of its own module; this only orders them.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from training import baselines as baselines_lib
from training import behavioural as behavioural_lib
from training import calibration as calibration_lib
from training import card as card_lib
from training import data as data_lib
from training import evaluation as evaluation_lib
from training import export as export_lib
from training import fit as fit_lib
from training import gate as gate_lib
from training import mixing
from training import publish as publish_lib
from training.behavioural import BehaviouralSet
from training.config import RunConfig
from training.epochs import folded_logits
from training.evaluation import MODEL, Scored
from training.fit import CALIBRATION, TEST, VALIDATION
from training.vectorize import Counts

logger = logging.getLogger("training")


def run(config: RunConfig) -> Path:
    """One training run; returns the published version directory or raises GateRefused."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config.params.seed)
    # Read now so that a malformed set fails the run before training, not after; the texts are
    # scored only once the model is final.
    behavioural_sets = behavioural_lib.load_sets(config.report.behavioural_sets)
    # Every file is found (or downloaded) before any work, and all missing ones named at once.
    sources = mixing.locate(config.data.mix, config.data.datasets, config.data.cache_dir)
    with tempfile.TemporaryDirectory(prefix="sentiment-rows-") as work_dir:
        data = data_lib.prepare(
            config.data.mix,
            sources,
            Path(work_dir),
            config.params.snippets_per_review,
            config.params.seed,
            config.data.limit,
        )
        return _train_and_publish(config, data, behavioural_sets, started)


def _scored(model: object, config: RunConfig, rows: Counts | None) -> Scored:
    if rows is None:  # no long reviews in the mix: no calibration snippets
        empty = np.zeros(0)
        return Scored(empty, empty, empty, empty.astype(str), empty.astype(str))
    return Scored.of(folded_logits(model, config.params, rows.matrix), rows)


def _train_and_publish(
    config: RunConfig,
    data: data_lib.RunData,
    behavioural_sets: list[BehaviouralSet],
    started: float,
) -> Path:
    params, verbose = config.params, config.report.verbose

    # vectorize, weigh, start and train: every setting chosen on the validation split
    held_out = fit_lib.fit_choosing_on_validation(params, data, config.data.mix, verbose)

    # calibrate (validation rows and calibration snippets only)
    scored = {
        split: _scored(held_out.model, config, held_out.counts.get(group))
        for split, group in (
            ("validation", VALIDATION),
            ("validation_snippets", CALIBRATION),
            ("test", TEST),
        )
    }
    calibration = evaluation_lib.fit_calibration(
        params.calibration, scored["validation"], scored["validation_snippets"]
    )
    logger.info("Calibration (%s): %s", params.calibration, calibration)
    if not len(scored["validation_snippets"].labels):
        del scored["validation_snippets"]
    held_out.counts.clear()

    # refit: the chosen settings fitted again on training + validation, calibration kept
    final = held_out
    if params.refit:
        final = fit_lib.refit(params, data, held_out, verbose)
        scored["test_before_refit"] = scored["test"]
        scored["test"] = _scored(final.model, config, final.counts.pop(TEST))

    # evaluate: the model, the same run's baselines, VADER and the live version on the same rows
    test = scored["test"]
    multipliers = held_out.selection.best.multipliers
    baselines = baselines_lib.fit_baselines(data, multipliers, params.refit)
    scorers = {
        MODEL: calibration_lib.sigmoid(calibration.apply_numpy(test.logits, test.counts)),
        **{name: result.test_probabilities for name, result in baselines.items()},
        "vader": baselines_lib.vader_probabilities(data.rows({"test"})),
    }
    live, live_probabilities = evaluation_lib.score_live_version(
        config.output.model_dir, (row.text for row in data.rows({"test"})), test.labels
    )
    if live_probabilities is not None:
        scorers["live"] = live_probabilities
    evaluation = evaluation_lib.Evaluation.of(
        evaluation_lib.metrics_by_split(scored, calibration), test, scorers, baselines, live
    )
    live = dataclasses.replace(live, by_domain=evaluation.accuracies("live"))
    evaluation = dataclasses.replace(evaluation, live=live)

    # export, verify and publish
    trained = export_lib.TrainedModel(params, final.vectorizer, final.model, calibration)
    staging = publish_lib.create_staging_dir(config.output.model_dir)
    try:
        export_lib.write_saved_model(trained, staging)
        samples = card_lib.pick_samples(data, test.labels, params.seed)
        served = export_lib.verify_export(staging, samples, trained.reference(samples))
        card_lib.plot_history(held_out.training.history, staging / card_lib.CURVES_FILE)
        behaviour = behavioural_lib.report(behavioural_sets, export_lib.load_scorer(staging))
        evaluation = dataclasses.replace(evaluation, behaviour=behaviour)
        decision = gate_lib.decide(
            {
                domain: gate_lib.DomainFigures(
                    figures[MODEL]["accuracy"],
                    figures[MODEL]["ece"],
                    figures[MODEL]["ece_floor"],
                    figures[MODEL]["rows"],
                )
                for domain, figures in evaluation.by_domain.items()
            },
            evaluation.live,
            {name: float(evaluation.mean_accuracy(name) or 0.0) for name in baselines},
            config.gate,
        )
        card = card_lib.model_card(
            config,
            data,
            final,
            held_out.training,
            calibration,
            evaluation,
            list(zip(samples, served.tolist(), strict=True)),
            decision,
            card_lib.resources_section(started, time.perf_counter()),
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
