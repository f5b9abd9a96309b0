"""Start, watch and stop the uvicorn servers under test, as real subprocesses on 127.0.0.1.

Shared by the benchmark and the end-to-end tests (tests/app/test_app_e2e.py).

The benchmark measures servers exactly as they are deployed, in their own processes: the
service as `python -m app` (its settings choose workers, shared metrics, uvloop and
httptools), the ceiling as `uvicorn <factory> --factory` with the same loop, parser and no
access log, the peers (bench.peers) from their own command lines. This module also reads the
servers' CPU time and resident memory from /proc so the report can show where the cores went and
whether memory stays flat under overload.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings, env_name

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A running uvicorn subprocess and where to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        """Everything the server wrote so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def _process_tree(root_pid: int) -> list[int]:
    """The root and all its descendants (`python -m app` spawns one process per worker)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def _cpu_ticks(stat_path: str) -> int:
    """User + system clock ticks from a /proc stat file; 0 if the process is gone."""
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # After the comm field: state is [0], utime [11], stime [12] (fields 14/15 in proc(5)).
    return int(fields[11]) + int(fields[12])


def cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds used so far by a process tree."""
    ticks = sum(_cpu_ticks(f"/proc/{pid}/stat") for pid in _process_tree(root_pid))
    return ticks / _CLOCK_TICKS


def main_thread_cpu_seconds(root_pid: int) -> float:
    """CPU seconds of the main threads of a process tree: for uvicorn, the event loops.

    Split from the process total it shows how much per-request work sits on the one thread
    per worker that every request must pass through (the model runs on other threads, mostly
    GIL-free).
    """
    ticks = sum(_cpu_ticks(f"/proc/{pid}/task/{pid}/stat") for pid in _process_tree(root_pid))
    return ticks / _CLOCK_TICKS


def rss_mib(root_pid: int) -> float:
    """Resident memory (VmRSS) of a process tree in MiB."""
    total_kib = 0
    for pid in _process_tree(root_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024.0


def _clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment minus any SENTIMENT_* setting, plus the benchmark's own.

    A stray SENTIMENT_API_KEY or QUEUE_SIZE in the shell would silently change what is measured.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("SENTIMENT_")}
    env.update(extra)
    return env


SERVICE = "app"
"""The `target` that starts the service the way it ships: `python -m app`."""
CEILING = "bench.ceiling"
"""The `target` that starts the ceiling app with the service's worker count (bench.ceiling)."""
BARE = "bench.bare"
"""The `target` that starts the bare batching server like the service (bench.bare)."""
# Run as `python -m <target>`, configured like the service.
_MODULE_TARGETS = (SERVICE, CEILING, BARE)


def start_server(name: str, target: str, env: Mapping[str, str], cwd: Path) -> Server:
    """Start `target` on a free port; does not wait for readiness.

    `target` is SERVICE, CEILING, BARE (configured by SENTIMENT_* variables, workers
    included) or a uvicorn factory (`module:function`), run with one worker.
    """
    port = free_port()
    environment = _clean_environment(env)
    if target in _MODULE_TARGETS:
        command = [sys.executable, "-m", target]
        environment |= {"SENTIMENT_HOST": HOST, "SENTIMENT_PORT": str(port)}
        # gRPC only when asked for: on its fixed default port (8001) the server would share
        # the port (SO_REUSEPORT) with a service running on this machine.
        environment.setdefault("SENTIMENT_GRPC_PORT", "0")
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    return _spawn(name, command, environment, cwd, port)


def start_command(
    name: str, command: Callable[[int], list[str]], env: Mapping[str, str], cwd: Path
) -> Server:
    """Start any server given its command line for a port (the peers: bench.peers)."""
    port = free_port()
    return _spawn(name, command(port), _clean_environment(env), cwd, port)


def _spawn(
    name: str, command: list[str], environment: dict[str, str], cwd: Path, port: int
) -> Server:
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
        prefix=f"bench-{name}-", suffix=".log", delete=False
    )
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=environment,
        start_new_session=True,  # a process group: stopping it reaches every worker
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    logger.info("started %s (pid %d) on port %d", name, process.pid, port)
    return Server(name=name, process=process, port=port, log_path=Path(log_file.name))


def get_status(port: int, path: str, timeout_s: float = 2.0) -> int:
    """Status code of a GET, or 0 if the server does not answer."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def post_json(port: int, path: str, body: bytes, timeout_s: float = 30.0) -> tuple[int, bytes]:
    """One blocking POST, for smoke checks outside the measured phases."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (IPv4 and IPv6), from /proc/net/tcp*.

    Each worker of `python -m app` listens on its own SO_REUSEPORT socket once its model is
    loaded, so this counts the workers that are ready for connections.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is "ADDR:PORT" in hex; state 0A is LISTEN.
            if (
                len(fields) > 3
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                count += 1
    return count


def wait_ready(server: Server, path: str, timeout_s: float, listeners: int = 1) -> None:
    """Poll `path` until it answers 200 and `listeners` sockets listen on the port.

    With several workers the first ready one answers `path` while the others may still be
    loading; a measurement started then would load one worker only. Fails loudly (with the
    server's log) on a timeout or an early exit.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        if get_status(server.port, path) == 200 and listening_sockets(server.port) >= listeners:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {timeout_s:.0f}s:\n{server.log_tail()}")


def wait_settled(
    server: Server, timeout_s: float = 120.0, window_s: float = 1.0, idle_cores: float = 0.3
) -> bool:
    """Wait until the server's process tree stops burning CPU: every worker has loaded.

    For servers whose workers share one socket (the peers), readiness answered by one worker
    says nothing of the others, which may still be loading TensorFlow; a loading worker keeps a
    core busy, an idle server uses next to none. False (and a warning) if it never settles.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu_seconds(server.pid)
        time.sleep(window_s)
        if (cpu_seconds(server.pid) - before) / window_s < idle_cores:
            return True
    logger.warning("%s still busy after %.0f s: measuring anyway", server.name, timeout_s)
    return False


def stop_server(server: Server, timeout_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL to the whole group (workers included) if it does not exit in time."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    with contextlib.suppress(ProcessLookupError):  # nothing of the group may outlive the run
        os.killpg(server.process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        server.log_path.unlink()


@contextlib.contextmanager
def running_server(
    name: str,
    target: str,
    env: Mapping[str, str],
    cwd: Path,
    ready_path: str,
    ready_timeout_s: float = 180.0,
    listeners: int = 1,
) -> Iterator[Server]:
    """A ready server (`listeners` listening sockets) for the block, always stopped after."""
    server = start_server(name, target, env, cwd)
    try:
        wait_ready(server, ready_path, ready_timeout_s, listeners)
        yield server
    finally:
        stop_server(server)


@contextlib.contextmanager
def running_command(
    name: str,
    command: Callable[[int], list[str]],
    env: Mapping[str, str],
    cwd: Path,
    ready_path: str,
    ready_timeout_s: float = 180.0,
) -> Iterator[Server]:
    """A server started from its command line, ready and settled for the block, always stopped
    after."""
    server = start_command(name, command, env, cwd)
    try:
        wait_ready(server, ready_path, ready_timeout_s)
        wait_settled(server)
        yield server
    finally:
        stop_server(server)


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings a service started with `env` sees: Settings' defaults plus its
    ``SENTIMENT_*`` variables (so a benchmark knows, e.g., how many workers to wait for)."""
    return Settings.model_validate(
        {field: env[env_name(field)] for field in Settings.model_fields if env_name(field) in env}
    )


def quiet_service_env(model_base: Path, extra: Mapping[str, str], grpc_port: int) -> dict[str, str]:
    """The environment of a service under a cost benchmark: the model base, no access log,
    warnings only, the caller's settings, and the gRPC port the benchmark chose."""
    env = {
        "SENTIMENT_MODEL_BASE_PATH": str(model_base),
        "SENTIMENT_LOG_LEVEL": "warning",
        "SENTIMENT_ACCESS_LOG": "false",
    }
    env.update(extra)
    env["SENTIMENT_GRPC_PORT"] = str(grpc_port)
    return env
