"""The wrk driver reads wrk's report faithfully and its script sends what it is given.

The parser is checked on wrk 4.1's real output (with and without socket errors, non-2xx
answers and the Lua status tally); the script is run by wrk itself against a tiny real server
when wrk is installed.
"""

from __future__ import annotations

import http.server
import math
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from bench.loadclient import LoadSpec
from bench.wrk import (
    find_wrk,
    lua_script,
    parse_wrk_output,
    run_wrk,
    to_load_result,
    whole_seconds,
    wrk_command,
)

CLEAN = """\
Running 2s test @ http://127.0.0.1:41235/v1/predict
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.48ms    1.21ms  21.37ms   82.16%
    Req/Sec     9.93k   420.33    10.48k    80.00%
  Latency Distribution
     50%    6.31ms
     75%  812.00us
     90%    7.80ms
     99%    1.02s
  19771 requests in 2.00s, 3.49MB read
Requests/sec:   9878.91
Transfer/sec:      1.74MB
"""

TROUBLED = """\
Running 3s test @ http://127.0.0.1:41235/v1/predict
  1 threads and 512 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    50.12ms   10.00ms 300.00ms   70.00%
    Req/Sec    10.00k     1.00k   12.00k    70.00%
  Latency Distribution
     50%   48.00ms
     75%   55.00ms
     90%   70.00ms
     99%  120.50ms
  30123 requests in 3.10s, 5.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 12000
Requests/sec:   9717.10
Transfer/sec:      1.61MB
status 200 18123
status 429 12000
"""


def _spec(concurrency: int = 64) -> LoadSpec:
    return LoadSpec("127.0.0.1", 8000, "/v1/predict", [b"{}"], concurrency, 10, 2.0)


def test_parses_rate_count_and_every_latency_unit() -> None:
    output = parse_wrk_output(CLEAN)

    assert output.requests == 19771
    assert output.elapsed_s == pytest.approx(2.0)
    assert output.requests_per_s == pytest.approx(9878.91)
    assert output.percentiles_ms == pytest.approx({50.0: 6.31, 75.0: 0.812, 90.0: 7.8, 99.0: 1020})
    assert (output.timeouts, output.non_2xx, output.status_counts) == (0, 0, None)


def test_parses_socket_errors_non_2xx_and_the_status_tally() -> None:
    output = parse_wrk_output(TROUBLED)

    assert (output.connect_errors, output.read_errors, output.write_errors) == (1, 2, 3)
    assert output.timeouts == 4
    assert output.non_2xx == 12000
    assert output.status_counts == {200: 18123, 429: 12000}


def test_a_load_result_keeps_wrk_figures_and_flags_non_2xx() -> None:
    clean = to_load_result(_spec(), parse_wrk_output(CLEAN), client_cpu_s=0.5)
    assert clean.status_counts == {200: 19771}
    assert clean.requests_per_s == pytest.approx(9878.91)
    assert (clean.p50_ms, clean.p99_ms) == pytest.approx((6.31, 1020.0))
    assert math.isnan(clean.percentile_ms(99.9))

    troubled = to_load_result(_spec(), parse_wrk_output(TROUBLED), client_cpu_s=0.5)
    assert troubled.status_counts == {200: 18123, 429: 12000}
    assert (troubled.timeouts, troubled.errors) == (4, 6)

    without_tally = TROUBLED.replace("status 200 18123\nstatus 429 12000\n", "")
    untallied = to_load_result(_spec(), parse_wrk_output(without_tally), client_cpu_s=0.5)
    assert untallied.status_counts == {200: 18123, 0: 12000}  # 0: "not 2xx", never hidden


def test_refuses_what_is_not_a_wrk_report() -> None:
    with pytest.raises(ValueError, match="not a wrk report"):
        parse_wrk_output("wrk: unknown option\n")


def test_the_command_is_bounded_and_asks_for_latency_percentiles() -> None:
    command = wrk_command("/usr/bin/wrk", _spec(concurrency=1), Path("s.lua"), 4, 2)

    assert command[1:6] == ["-t1", "-c1", "-d2s", "--timeout=10s", "--latency"]
    assert command[-1] == "http://127.0.0.1:8000/v1/predict"
    assert whole_seconds(0.2) == 1 and whole_seconds(2.4) == 2


def test_the_script_quotes_bodies_that_contain_lua_brackets() -> None:
    script = lua_script("/v1/predict", [b'{"text": "a ]] b ]=] c"}'], count_statuses=False)

    assert '[==[{"text": "a ]] b ]=] c"}]==]' in script
    assert "function response" not in script
    assert "function response" in lua_script("/p", [b"{}"], count_statuses=True)
    with pytest.raises(ValueError):
        lua_script("/p", [], count_statuses=False)


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: ClassVar[Counter[bytes]] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.bodies[body] += 1
        status = 429 if body.endswith(b"2}") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[int]:
    _Recorder.bodies = Counter()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(find_wrk() is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_rotates_the_bodies_and_the_tally_tells_statuses_apart(recorder: int) -> None:
    bodies = [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    wrk = find_wrk()
    assert wrk is not None
    spec = LoadSpec("127.0.0.1", recorder, "/v1/predict", bodies, 2, 10**9, 1.0)

    result = run_wrk(spec, wrk, count_statuses=True)

    assert set(_Recorder.bodies) == set(bodies)
    assert result.completed > 0 and result.timeouts == 0
    assert set(result.status_counts) == {200, 429}
    assert sum(result.status_counts.values()) == result.completed
    # Rotation: every body about as often as the others.
    counts = sorted(_Recorder.bodies.values())
    assert counts[-1] - counts[0] <= 2 + counts[-1] // 10
