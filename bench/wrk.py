"""Drive a server with wrk (https://github.com/wg/wrk), the benchmark's preferred load client.

wrk is C with an epoll loop: a few microseconds of CPU per request, so on a 2-core machine it
takes a far smaller share of the cores than any Python client (``bench.loadclient`` is the
fallback when wrk is missing: ``apt-get install wrk``). The request bodies (real reviews)
rotate through a Lua script written to a temporary file; latency percentiles come from wrk's
``--latency`` table and, when statuses must be told apart (overload: 200 or 429), a Lua
``response`` hook counts them and ``done`` prints the tally.

Every run is bounded: wrk stops after ``duration_s`` (whole seconds, wrk's unit), and the
subprocess is killed if it outlives that by more than a margin.
"""

from __future__ import annotations

import contextlib
import math
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.loadclient import LoadResult, LoadSpec

_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"
_PERCENTILE_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+" + _DURATION + r"\s*$", re.MULTILINE)
_TOTAL_LINE = re.compile(r"^\s*(\d+) requests in " + _DURATION, re.MULTILINE)
_RATE_LINE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.MULTILINE)
_STATUS_LINE = re.compile(r"^status (\d+) (\d+)$", re.MULTILINE)
# wrk's timeout is per request; the benchmark's Python client uses the same 10 s.
_KILL_MARGIN_S = 30.0


def find_wrk() -> str | None:
    """The wrk executable on PATH, or None."""
    return shutil.which("wrk")


@dataclass(frozen=True)
class WrkOutput:
    """What one wrk run printed, parsed."""

    requests: int
    elapsed_s: float
    requests_per_s: float
    percentiles_ms: dict[float, float]
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx: int
    status_counts: dict[int, int] | None  # only when the script counted statuses


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS_S[unit]


def parse_wrk_output(text: str) -> WrkOutput:
    """Parse wrk's report (run with ``--latency``); ValueError if it is not one."""
    total = _TOTAL_LINE.search(text)
    rate = _RATE_LINE.search(text)
    if total is None or rate is None:
        raise ValueError(f"not a wrk report: {text[-500:]!r}")
    percentiles = {
        float(match.group(1)): 1000.0 * _seconds(match.group(2), match.group(3))
        for match in _PERCENTILE_LINE.finditer(text)
    }
    errors = _SOCKET_ERRORS.search(text)
    connect, read, write, timeout = (
        (int(group) for group in errors.groups()) if errors else (0,) * 4
    )
    non_2xx = _NON_2XX.search(text)
    statuses = {int(status): int(count) for status, count in _STATUS_LINE.findall(text)}
    return WrkOutput(
        requests=int(total.group(1)),
        elapsed_s=_seconds(total.group(2), total.group(3)),
        requests_per_s=float(rate.group(1)),
        percentiles_ms=percentiles,
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        status_counts=dict(sorted(statuses.items())) if statuses else None,
    )


def _lua_long_string(text: str) -> str:
    """``text`` as a Lua long-bracket string literal, with a level that cannot clash."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    equals = "=" * level
    return f"[{equals}[{text}]{equals}]"


def lua_script(path: str, bodies: Sequence[bytes], count_statuses: bool) -> str:
    """A wrk script POSTing ``bodies`` to ``path`` in turn (each thread from its own offset).

    With ``count_statuses`` every answer's status is tallied per thread and ``done`` prints
    ``status <code> <count>`` lines; wrk itself only reports "Non-2xx or 3xx responses".
    """
    if not bodies:
        raise ValueError("at least one request body is needed")
    literals = ",\n".join(_lua_long_string(body.decode("utf-8")) for body in bodies)
    script = f"""
local bodies = {{
{literals}
}}
local path = {_lua_long_string(path)}
local requests = {{}}
local index = 0
local threads = {{}}
statuses = {{}}

function setup(thread)
  thread:set("offset", #threads * 7)
  table.insert(threads, thread)
end

function init(args)
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", path, {{["Content-Type"] = "application/json"}}, body)
  end
  index = (offset or 0) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end
"""
    if count_statuses:
        script += """
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  for status, count in pairs(merged) do
    io.write(string.format("status %d %d\\n", status, count))
  end
end
"""
    return script


def wrk_command(wrk: str, spec: LoadSpec, script: Path, threads: int, duration_s: int) -> list[str]:
    """The wrk command line for one bounded run of ``spec``."""
    return [
        wrk,
        f"-t{max(1, min(threads, spec.concurrency))}",
        f"-c{spec.concurrency}",
        f"-d{duration_s}s",
        f"--timeout={max(1, math.ceil(spec.request_timeout_s))}s",
        "--latency",
        "-s",
        str(script),
        f"http://{spec.host}:{spec.port}{spec.path}",
    ]


def whole_seconds(duration_s: float) -> int:
    """wrk takes whole seconds; never less than one."""
    return max(1, round(duration_s))


def to_load_result(spec: LoadSpec, output: WrkOutput, client_cpu_s: float) -> LoadResult:
    """wrk's figures in the shape the rest of the benchmark reads (no per-request latencies)."""
    if output.status_counts is not None:
        statuses = output.status_counts
    else:
        # Without the Lua tally wrk only says how many were not 2xx/3xx; 200 is all the
        # benchmark's throughput phases expect, and anything else shows up as "non-2xx".
        statuses = {200: output.requests - output.non_2xx}
        if output.non_2xx:
            statuses[0] = output.non_2xx
    return LoadResult(
        concurrency=spec.concurrency,
        completed=output.requests,
        elapsed_s=output.elapsed_s,
        latencies_s=[],
        status_counts={status: count for status, count in statuses.items() if count},
        timeouts=output.timeouts,
        errors=output.connect_errors + output.read_errors + output.write_errors,
        client_cpu_s=client_cpu_s,
        reported_percentiles_ms=output.percentiles_ms,
        reported_requests_per_s=output.requests_per_s,
    )


def run_wrk(
    spec: LoadSpec, wrk: str, *, threads: int = 1, count_statuses: bool = False
) -> LoadResult:
    """One bounded wrk run against ``spec``; its CPU time is measured as a child's rusage."""
    duration_s = whole_seconds(spec.duration_s)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-", delete=False) as f:
        f.write(lua_script(spec.path, spec.bodies, count_statuses))
        script = Path(f.name)
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        completed = subprocess.run(
            wrk_command(wrk, spec, script, threads, duration_s),
            capture_output=True,
            text=True,
            timeout=duration_s + spec.request_timeout_s + _KILL_MARGIN_S,
            check=False,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        with contextlib.suppress(OSError):
            script.unlink()
    if completed.returncode != 0:
        raise RuntimeError(f"wrk exited with {completed.returncode}: {completed.stderr[-500:]}")
    output = parse_wrk_output(completed.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = to_load_result(spec, output, cpu)
    if result.elapsed_s <= 0:
        result.elapsed_s = wall
    return result
