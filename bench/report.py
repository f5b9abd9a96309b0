"""The benchmark's report: Markdown tables for the README and PASS/MISS against the targets."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable

from bench.loadclient import LoadResult
from bench.measure import STEADY_TOLERANCE
from bench.options import Options
from bench.peers import PEERS
from bench.run import PEER_CONCURRENCY, PeerResults, Results, VersionCosts

# Targets, printed beside the figures with PASS/MISS. Issue 27: the service within 10% of what
# the model allows at c=64, within 0.6 ms of the ceiling at c=1, a default graph at most 0.6 x
# the older version's cost per text, and (peer mode) 3 x every peer at c=64 and the lowest p50
# at c=1. The service/ceiling ratio stays in the tables: with this model it cannot reach issue
# 12's 0.6 x (the model alone caps it near there), so it is no longer a target.
TARGET_C64_BOUND_RATIO = 0.9  # x the model-bound limit
TARGET_C1_P50_DELTA_MS = 0.6
TARGET_VERSION_COST_RATIO = 0.6  # default version's in-process CPU per text / the older one's
TARGET_PEER_RATIO = 3.0  # our c=64 req/s / each peer's
TARGET_BATCH_RATIO = 0.9  # x in-process texts/s x workers
TARGET_RSS_GROWTH = 0.10


def model_bound_rps(cores: int, ceiling_rps: float, model_cpu_ms_per_text: float) -> float:
    """What a service with zero overhead of its own could answer: the ceiling plus the model.

    The ceiling keeps every core busy, so it costs ``cores / ceiling_rps`` CPU seconds per
    request; a single-text request adds the model's CPU per text. With every core busy the
    rate is cores / (that sum).
    """
    if cores <= 0 or ceiling_rps <= 0 or model_cpu_ms_per_text < 0:
        raise ValueError("cores and the ceiling rate must be positive, the model cost not negative")
    return cores / (cores / ceiling_rps + model_cpu_ms_per_text / 1000.0)


def _render_bare(add: Callable[[str], None], results: Results, cores: int, cost_ms: float) -> None:
    """The bare batching server's table: how near this stack comes to the model-bound limit
    with nothing but batching, and the service against it (what its own features cost)."""
    add("### Single-text `POST /v1/predict`: the bare batching server (same stack and model)")
    add("")
    add(
        "`python -m bench.bare`, in the same rounds with the same workers and settings: the "
        "ceiling's app with the model behind the simplest greedy batcher, and nothing else (no "
        "metrics, versions, gRPC or limits). Its share of the model-bound limit is what this "
        "stack reaches; the service's share of its rate is what the service's own features cost."
    )
    add("")
    add(
        "| concurrency | bare req/s | p50 ms | p99 ms | bare/bound | service/bare "
        "| p50 delta ms (service - bare) | CPU ms/req bare (loop thread) | bare answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, bare in results.bare.items():
        service, ceiling = results.single[concurrency]
        bound = model_bound_rps(cores, max(ceiling.requests_per_s, 1e-9), cost_ms)
        add(
            f"| {concurrency} | {bare.requests_per_s:,.0f} | {bare.p50_ms:.2f} "
            f"| {bare.p99_ms:.2f} | {bare.requests_per_s / bound:.2f} "
            f"| {service.requests_per_s / max(bare.requests_per_s, 1e-9):.2f} "
            f"| {service.p50_ms - bare.p50_ms:+.2f} | {bare.server_cpu_ms_per_request:.3f} "
            f"({bare.loop_thread_cpu_ms_per_request:.3f}) "
            f"| {_statuses(bare.load)}{_failures(bare.load)} |"
        )
    add("")


def _statuses(load: LoadResult) -> str:
    parts = [f"{status or 'non-2xx'}: {count}" for status, count in load.status_counts.items()]
    return ", ".join(parts) or "none"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _client_text(options: Options, results: Results) -> str:
    if results.client == "wrk":
        return f"wrk ({options.wrk_threads} thread, `--latency`, Lua script rotating the bodies)"
    return (
        "raw asyncio sockets in its own process (**wrk is not installed: `apt-get install "
        "wrk`; this client takes a larger share of the cores and lowers every figure**)"
    )


def render(options: Options, results: Results) -> tuple[str, bool]:
    """The report as Markdown, and whether every target was met."""
    workers = results.workers
    cores = os.cpu_count() or 1
    cost_ms = results.model_cost.median_cpu_ms_per_text
    lines: list[str] = []
    add = lines.append
    add("## Benchmark results")
    add("")
    add(
        f"Machine: {cores} cores ({platform.machine()}), Python "
        f"{platform.python_version()}; service: `python -m app`, {workers} worker(s); "
        f"ceiling: `python -m bench.ceiling`, {workers} worker(s) (the same supervisor, one "
        f"`SO_REUSEPORT` socket per worker; both uvloop, httptools, no access log); service "
        f"settings: {_settings_text(options)}; load client: {_client_text(options, results)}; "
        f"{results.text_count} real IMDB test reviews (median {results.median_chars} "
        f"characters); per server and phase {options.warmup_s:g} s warm-up, then "
        f"{options.rounds} rounds of {options.duration_s / options.rounds:g} s alternating "
        f"with the server compared against; req/s, p50 and p99 are medians over rounds. "
        f"Model `{options.model_base}` version {results.version}. Load average at the end: "
        f"{results.load_average}."
    )
    add("")
    add(
        f"Model cost: in process, one process with the service's TensorFlow threads, signature "
        f"`{results.signature}` on batches of {results.model_cost.batch_size}: "
        f"**{cost_ms:.4f} ms CPU per text** (median of "
        f"{len(results.model_cost.cpu_ms_per_text_runs)} runs). Model-bound limit = cores / "
        f"(cores / ceiling req/s + that cost): what a service with no overhead of its own "
        f"would reach."
    )
    add("")
    add("### Single-text `POST /v1/predict`: service vs. ceiling (same framework, constant answer)")
    add("")
    add(
        "| concurrency | service req/s | p50 ms | p99 ms | ceiling req/s | p50 ms | p99 ms "
        "| service/ceiling | model-bound req/s | service/bound | p50 delta ms "
        "| CPU ms/req service (loop thread) | ceiling (loop thread) | service CPU cores "
        "| client CPU cores | service answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, (service, ceiling) in results.single.items():
        ratio = service.requests_per_s / max(ceiling.requests_per_s, 1e-9)
        bound = model_bound_rps(cores, max(ceiling.requests_per_s, 1e-9), cost_ms)
        delta = service.p50_ms - ceiling.p50_ms
        add(
            f"| {concurrency} | {service.requests_per_s:,.0f} | {service.p50_ms:.2f} "
            f"| {service.p99_ms:.2f} | {ceiling.requests_per_s:,.0f} "
            f"| {ceiling.p50_ms:.2f} | {ceiling.p99_ms:.2f} | {ratio:.2f} "
            f"| {bound:,.0f} | {service.requests_per_s / bound:.2f} "
            f"| {delta:+.2f} | {service.server_cpu_ms_per_request:.3f} "
            f"({service.loop_thread_cpu_ms_per_request:.3f}) "
            f"| {ceiling.server_cpu_ms_per_request:.3f} "
            f"({ceiling.loop_thread_cpu_ms_per_request:.3f}) | {service.server_cpu_cores:.2f} "
            f"| {service.load.client_cpu_share:.2f} | {_statuses(service.load)}"
            f"{_failures(service.load)} |"
        )
    add("")
    _render_bare(add, results, cores, cost_ms)
    add(f"### `POST /v1/predict/batch` with {options.batch_size} texts vs. the model in process")
    add("")
    inprocess = results.inprocess
    model_limit = inprocess.median_texts_per_s * workers
    add(
        f"In process, `{results.signature}` on batches of {inprocess.batch_size} with the "
        f"service's TensorFlow threads: **{inprocess.median_texts_per_s:,.0f} texts/s** "
        f"(median of {len(inprocess.texts_per_s_runs)} runs alternating with the HTTP rounds), "
        f"{inprocess.median_cpu_ms_per_text:.4f} ms CPU per text; x {workers} worker(s) = "
        f"**{model_limit:,.0f} texts/s**, the yardstick."
    )
    add("")
    add(
        "| concurrency | requests/s | texts/s | p50 ms | p99 ms | HTTP/(in-process x workers) "
        "| server CPU ms/text | service CPU cores | client CPU cores | answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, measured in results.batch.items():
        texts_per_s = measured.requests_per_s * options.batch_size
        add(
            f"| {concurrency} | {measured.requests_per_s:,.1f} | {texts_per_s:,.0f} "
            f"| {measured.p50_ms:.1f} | {measured.p99_ms:.1f} "
            f"| {texts_per_s / model_limit:.2f} "
            f"| {measured.server_cpu_ms_per_request / options.batch_size:.4f} "
            f"| {measured.server_cpu_cores:.2f} | {measured.load.client_cpu_share:.2f} "
            f"| {_statuses(measured.load)}{_failures(measured.load)} |"
        )
    add("")
    overload = results.overload.load
    before, after_first, after_second = results.overload_rss_mib
    add(
        f"### Overload: concurrency {options.overload_concurrency}, "
        f"`SENTIMENT_QUEUE_SIZE={options.overload_queue_size}`, two bursts of "
        f"{options.overload_duration_s:g} s"
    )
    add("")
    add(
        "| answered | answers | timeouts | connection errors | RSS before | after burst 1 "
        "| after burst 2 |"
    )
    add("|---:|---|---:|---:|---:|---:|---:|")
    add(
        f"| {overload.completed:,} | {_statuses(overload)} | {overload.timeouts} "
        f"| {overload.errors} | {before:.0f} MiB | {after_first:.0f} MiB | {after_second:.0f} MiB |"
    )
    add("")

    checks: list[tuple[str, str, bool]] = []
    top = max(results.single)
    service_top, ceiling_top = results.single[top]
    bound_top = model_bound_rps(cores, max(ceiling_top.requests_per_s, 1e-9), cost_ms)
    checks.append(
        (
            f"c={top}: service req/s ≥ {TARGET_C64_BOUND_RATIO} x the model-bound limit",
            f"{service_top.requests_per_s:,.0f} / {bound_top:,.0f} = "
            f"{service_top.requests_per_s / bound_top:.2f} x",
            service_top.requests_per_s >= TARGET_C64_BOUND_RATIO * bound_top
            and _clean(service_top.load),
        )
    )
    low = min(results.single)
    service_low, ceiling_low = results.single[low]
    delta_low = service_low.p50_ms - ceiling_low.p50_ms
    checks.append(
        (
            f"c={low}: service p50 ≤ ceiling p50 + {TARGET_C1_P50_DELTA_MS} ms",
            f"{service_low.p50_ms:.2f} ms vs {ceiling_low.p50_ms:.2f} ms ({delta_low:+.2f} ms)",
            delta_low <= TARGET_C1_P50_DELTA_MS and _clean(service_low.load),
        )
    )
    if results.version_costs is not None:
        checks.append(_version_check(results.version_costs))
    phases = [service for service, _ in results.single.values()] + list(results.batch.values())
    checks.append(
        (
            "no errors: every single-text and batch request to the service answered 200",
            f"{sum(measured.load.completed for measured in phases):,} answered; non-2xx "
            f"{sum(_non_200(measured.load) for measured in phases)}, timeouts "
            f"{sum(measured.load.timeouts for measured in phases)}, connection errors "
            f"{sum(measured.load.errors for measured in phases)}",
            all(_clean(measured.load) for measured in phases),
        )
    )
    best_batch = max(results.batch.items(), key=lambda item: item[1].requests_per_s, default=None)
    if best_batch is not None:
        batch_concurrency, batch_measured = best_batch
        batch_ratio = batch_measured.requests_per_s * options.batch_size / model_limit
        checks.append(
            (
                f"batch {options.batch_size}: HTTP texts/s ≥ {TARGET_BATCH_RATIO} x in-process "
                f"x {workers} worker(s) (best concurrency: {batch_concurrency})",
                f"{batch_measured.requests_per_s * options.batch_size:,.0f} / "
                f"{model_limit:,.0f} = {batch_ratio:.2f} x",
                batch_ratio >= TARGET_BATCH_RATIO and _clean(batch_measured.load),
            )
        )
    only_200_429 = set(overload.status_counts) <= {200, 429}
    checks.append(
        (
            "overload: only 200 and 429, no timeouts",
            f"{_statuses(overload)}; timeouts {overload.timeouts}; errors {overload.errors}",
            only_200_429 and overload.timeouts == 0 and overload.errors == 0,
        )
    )
    growth = (after_second - before) / before if before > 0 else float("inf")
    checks.append(
        (
            f"overload: RSS flat (growth ≤ {TARGET_RSS_GROWTH:.0%})",
            f"{before:.0f} → {after_second:.0f} MiB ({growth:+.1%})",
            growth <= TARGET_RSS_GROWTH,
        )
    )
    if results.peers is not None:
        lines.extend(_peer_section(results.peers, workers, options))
        checks.extend(_peer_checks(results.peers))
    add("### Targets")
    add("")
    add("| target | measured | result |")
    add("|---|---|---|")
    for name, measured_text, ok in checks:
        add(f"| {name} | {measured_text} | {_verdict(ok)} |")
    add("")
    return "\n".join(lines), all(ok for _, _, ok in checks)


def _version_check(costs: VersionCosts) -> tuple[str, str, bool]:
    name = (
        f"serving cost per text, version {costs.default} / version {costs.older} (in process, "
        f"batch 64, rounds alternating) ≤ {TARGET_VERSION_COST_RATIO} x"
    )
    if costs.default == costs.older:
        return name, f"the default version is version {costs.older} itself: 1.00 x", False
    measured = (
        f"{statistics.median(costs.default_ms):.4f} / {statistics.median(costs.older_ms):.4f} ms "
        f"= {costs.ratio:.2f} x (median of {len(costs.default_ms)} per-round ratios)"
    )
    return name, measured, costs.ratio <= TARGET_VERSION_COST_RATIO


def _peer_section(peers: PeerResults, workers: int, options: Options) -> list[str]:
    """The peer table: our service and each peer at c=64 (req/s) and c=1 (p50), one run."""
    high, low = PEER_CONCURRENCY
    versions = peers.versions
    lines = [
        "### Peers: the same model, texts and workers, side by side (peer mode)",
        "",
        f"Each peer runs in `{peers.python}` with {workers} worker(s), loads the same "
        f"SavedModel with `tf.saved_model.load` and calls `serving_default` on one text per "
        f"request. Before measuring, each answered our service's probabilities on the same "
        f"texts (largest difference {max(peers.largest_difference.values(), default=0.0):.2g}),"
        f" and each server was warmed at each concurrency until two 1 s rounds in a row "
        f"agreed within {STEADY_TOLERANCE:.0%} (at most "
        f"{max(1, round(options.peer_warmup_max_s))}). "
        f"TensorFlow: tensorflow-cpu {versions.get('tensorflow-cpu', '?')} in the peers' "
        f"interpreter, {peers.service_tensorflow} in the service's. Rounds alternate between "
        f"the service and every peer at each concurrency; figures are medians over rounds.",
        "",
        f"| server | version | how it serves concurrent requests | c={high} req/s "
        f"| ours / it at c={high} | c={low} p50 ms | c={low} p99 ms | answers |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    ours_high = peers.service[high]
    ours_low = peers.service[low]
    lines.append(
        f"| ours (`python -m app`) | this checkout | micro-batching core, {workers} worker(s) "
        f"| {ours_high.requests_per_s:,.0f} | 1.00 | {ours_low.p50_ms:.2f} "
        f"| {ours_low.p99_ms:.2f} | {_statuses(ours_high.load)}; {_statuses(ours_low.load)} |"
    )
    for name, figures in peers.peers.items():
        peer = PEERS[name]
        at_high, at_low = figures[high], figures[low]
        lines.append(
            f"| {name} | {peer.distribution} {versions.get(peer.distribution, '?')} "
            f"| {peer.concurrency_setup} | {at_high.requests_per_s:,.0f} "
            f"| {ours_high.requests_per_s / max(at_high.requests_per_s, 1e-9):.2f} "
            f"| {at_low.p50_ms:.2f} | {at_low.p99_ms:.2f} "
            f"| {_statuses(at_high.load)}{_failures(at_high.load)}; "
            f"{_statuses(at_low.load)}{_failures(at_low.load)} |"
        )
    lines.append("")
    return lines


def _peer_checks(peers: PeerResults) -> list[tuple[str, str, bool]]:
    high, low = PEER_CONCURRENCY
    ours_high, ours_low = peers.service[high], peers.service[low]
    checks = []
    for name, figures in peers.peers.items():
        theirs = figures[high]
        ratio = ours_high.requests_per_s / max(theirs.requests_per_s, 1e-9)
        checks.append(
            (
                f"peers, c={high}: ours ≥ {TARGET_PEER_RATIO:g} x {name} "
                f"({PEERS[name].distribution} {peers.versions.get(PEERS[name].distribution, '?')})",
                f"{ours_high.requests_per_s:,.0f} / {theirs.requests_per_s:,.0f} = {ratio:.2f} x",
                ratio >= TARGET_PEER_RATIO and _clean(ours_high.load),
            )
        )
    lowest = min(
        ((name, figures[low].p50_ms) for name, figures in peers.peers.items()),
        key=lambda item: item[1],
        default=None,
    )
    if lowest is not None:
        others = ", ".join(
            f"{name} {figures[low].p50_ms:.2f}" for name, figures in peers.peers.items()
        )
        checks.append(
            (
                f"peers, c={low}: ours has the lowest p50",
                f"ours {ours_low.p50_ms:.2f} ms; {others} ms",
                ours_low.p50_ms < lowest[1] and _clean(ours_low.load),
            )
        )
    return checks


def _non_200(load: LoadResult) -> int:
    return sum(count for status, count in load.status_counts.items() if status != 200)


def _settings_text(options: Options) -> str:
    settings = dict(options.service_env)
    return ", ".join(f"`{key}={value}`" for key, value in sorted(settings.items())) or "defaults"


def _clean(load: LoadResult) -> bool:
    """A throughput figure only counts if every request was answered 200."""
    return set(load.status_counts) <= {200} and load.timeouts == 0 and load.errors == 0


def _failures(load: LoadResult) -> str:
    if load.timeouts or load.errors:
        return f"; timeouts {load.timeouts}, errors {load.errors}"
    return ""
