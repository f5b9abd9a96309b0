"""The benchmark's report: Markdown tables for the README and PASS/MISS against the targets."""

from __future__ import annotations

import os
import platform

from app.settings import Settings, env_name
from bench.loadclient import LoadResult
from bench.options import Options
from bench.run import Results

# Targets from issue 4; printed beside the figures with PASS/MISS.
TARGET_C64_RATIO = 0.7
TARGET_C1_P50_DELTA_MS = 1.5
TARGET_BATCH_RATIO = 0.7
TARGET_RSS_GROWTH = 0.10


def service_settings(options: Options) -> Settings:
    """The settings the service under test runs with: Settings' defaults plus --service-env."""
    return Settings.model_validate(
        {
            field: options.service_env[env_name(field)]
            for field in Settings.model_fields
            if env_name(field) in options.service_env
        }
    )


def _statuses(load: LoadResult) -> str:
    parts = [f"{status}: {count}" for status, count in load.status_counts.items()]
    return ", ".join(parts) or "none"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(options: Options, results: Results) -> tuple[str, bool]:
    """The report as Markdown, and whether every target was met."""
    workers = service_settings(options).workers
    lines: list[str] = []
    add = lines.append
    add("## Benchmark results")
    add("")
    add(
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
        f"{platform.python_version()}; service: `python -m app` with "
        f"{workers} worker(s) (shared metrics when several); ceiling: uvicorn, "
        f"1 worker (both uvloop, httptools, no access log); service settings: "
        f"{_settings_text(options)}; load client: raw asyncio sockets in its own process; "
        f"{results.text_count} real IMDB test reviews (median {results.median_chars} "
        f"characters); per server and phase {options.warmup_s:g} s warm-up, then "
        f"{options.rounds} rounds of ≤ {options.duration_s / options.rounds:g} s (≤ "
        f"{options.max_requests} requests) alternating with the server compared against; "
        f"req/s is the median over rounds, p50/p99 over all requests of all rounds. Model "
        f"`{options.model_base}`. Load average at the end: {results.load_average}."
    )
    add("")
    add("### Single-text `POST /v1/predict`: service vs. ceiling (same framework, constant answer)")
    add("")
    add(
        "| concurrency | service req/s | p50 ms | p99 ms | ceiling req/s | p50 ms | p99 ms "
        "| service/ceiling | p50 delta ms | CPU ms/req service (loop thread) "
        "| ceiling (loop thread) | service CPU cores | client CPU cores | service answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, (service, ceiling) in results.single.items():
        ratio = service.load.requests_per_s / max(ceiling.load.requests_per_s, 1e-9)
        delta = service.load.p50_ms - ceiling.load.p50_ms
        add(
            f"| {concurrency} | {service.load.requests_per_s:,.0f} | {service.load.p50_ms:.2f} "
            f"| {service.load.p99_ms:.2f} | {ceiling.load.requests_per_s:,.0f} "
            f"| {ceiling.load.p50_ms:.2f} | {ceiling.load.p99_ms:.2f} | {ratio:.2f} "
            f"| {delta:+.2f} | {service.server_cpu_ms_per_request:.3f} "
            f"({service.loop_thread_cpu_ms_per_request:.3f}) "
            f"| {ceiling.server_cpu_ms_per_request:.3f} "
            f"({ceiling.loop_thread_cpu_ms_per_request:.3f}) | {service.server_cpu_cores:.2f} "
            f"| {service.load.client_cpu_share:.2f} | {_statuses(service.load)}"
            f"{_failures(service.load)} |"
        )
    add("")
    add(f"### `POST /v1/predict/batch` with {options.batch_size} texts vs. the serving function")
    add("")
    inprocess = results.inprocess
    add(
        f"In process, `serving_default` on batches of {inprocess.batch_size}: "
        f"**{inprocess.median_texts_per_s:,.0f} texts/s** (median of "
        f"{len(inprocess.texts_per_s_runs)} runs alternating with the HTTP rounds; TensorFlow's "
        f"default threads), {inprocess.median_cpu_ms_per_text:.4f} ms CPU per text."
    )
    add("")
    add(
        "| concurrency | requests/s | texts/s | p50 ms | p99 ms | HTTP/in-process "
        "| server CPU ms/text | service CPU cores | client CPU cores | answers |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for concurrency, measured in results.batch.items():
        texts_per_s = measured.load.requests_per_s * options.batch_size
        add(
            f"| {concurrency} | {measured.load.requests_per_s:,.1f} | {texts_per_s:,.0f} "
            f"| {measured.load.p50_ms:.1f} | {measured.load.p99_ms:.1f} "
            f"| {texts_per_s / inprocess.median_texts_per_s:.2f} "
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
        f"≤ {options.overload_duration_s:g} s"
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
    ratio_top = service_top.load.requests_per_s / max(ceiling_top.load.requests_per_s, 1e-9)
    checks.append(
        (
            f"c={top}: service req/s ≥ {TARGET_C64_RATIO} x ceiling",
            f"{ratio_top:.2f} x",
            ratio_top >= TARGET_C64_RATIO and _clean(service_top.load),
        )
    )
    low = min(results.single)
    service_low, ceiling_low = results.single[low]
    delta_low = service_low.load.p50_ms - ceiling_low.load.p50_ms
    checks.append(
        (
            f"c={low}: service p50 ≤ ceiling p50 + {TARGET_C1_P50_DELTA_MS} ms",
            f"{service_low.load.p50_ms:.2f} ms vs {ceiling_low.load.p50_ms:.2f} ms "
            f"({delta_low:+.2f} ms)",
            delta_low <= TARGET_C1_P50_DELTA_MS and _clean(service_low.load),
        )
    )
    best_batch = max(
        results.batch.items(), key=lambda item: item[1].load.requests_per_s, default=None
    )
    if best_batch is not None:
        batch_concurrency, batch_measured = best_batch
        batch_ratio = (
            batch_measured.load.requests_per_s * options.batch_size / inprocess.median_texts_per_s
        )
        checks.append(
            (
                f"batch {options.batch_size}: HTTP texts/s ≥ {TARGET_BATCH_RATIO} x in-process "
                f"(best concurrency: {batch_concurrency})",
                f"{batch_ratio:.2f} x",
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
    add("### Targets")
    add("")
    add("| target | measured | result |")
    add("|---|---|---|")
    for name, measured_text, ok in checks:
        add(f"| {name} | {measured_text} | {_verdict(ok)} |")
    add("")
    return "\n".join(lines), all(ok for _, _, ok in checks)


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
