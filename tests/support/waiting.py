"""Ports, the bounded wait, and the processes tests start (servers, Node, gunicorn, nginx).

Every wait here has a generous bound that only turns a hang into a failure naming what was
awaited; none of them is a claim about speed.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional, Tuple

#: How often :func:`wait_for` looks again.
POLL = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def listening(port: int, host: str = '127.0.0.1') -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             describe: Optional[Callable[[], Any]] = None, interval: float = POLL) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that.

    After ``timeout`` seconds fail with an AssertionError naming ``what`` (and ``describe()``, the
    state seen last). For state that has no event to wait on: a server process's, a registry's.
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()  # never set: a sleep that is not a synchronisation point
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f'; last seen: {describe()}' if describe is not None else ''
            raise AssertionError(f'timed out after {timeout:g} s waiting for {what}{seen}')
        tick.wait(interval)


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it if it is still there after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """:func:`terminate` ``proc`` if it still runs, then close its pipes."""
    if proc.poll() is None:
        terminate(proc, timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except BrokenPipeError:
                pass


def wait_for_http(url: str, proc: subprocess.Popen, log_path: Any, timeout: float = 60,
                  ready: Callable[[Any], bool] = lambda response: True) -> Any:
    """Wait until the server process ``proc`` answers GET ``url`` with a response ``ready``
    accepts; return that response. Fails with the end of its log (``log_path``) if it exits or
    does not answer within ``timeout`` s (a gunicorn worker takes seconds to boot on a loaded
    machine)."""
    import requests

    def up() -> Any:
        if proc.poll() is not None:
            raise AssertionError(f'the server exited ({proc.returncode}):\n{_tail(log_path)}')
        try:
            # Connection: close, or the probe's idle keep-alive connection is one gunicorn's
            # graceful stop waits for (up to its keep-alive time-out) in the shutdown tests.
            response = requests.get(url, timeout=5, headers={'Connection': 'close'})
        except requests.RequestException:  # not listening yet, or still booting its worker
            return None
        # a tuple: a Response is falsy for a 4xx status, which may be the answer awaited
        return (response,) if ready(response) else None
    return wait_for(up, timeout, f'the server at {url}', lambda: _tail(log_path))[0]


def _tail(log_path: Any) -> str:
    try:
        with open(log_path, encoding='utf-8', errors='replace') as fh:
            return fh.read()[-3000:]
    except OSError as exc:
        return f'(no log: {exc})'


def proc_status(pid: int, field: str) -> int:
    """A number of ``/proc/<pid>/status`` (``Threads``, ``VmRSS`` in KB...)."""
    with open(f'/proc/{pid}/status') as fh:
        for line in fh:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise AssertionError(f'no {field} line for {pid}')


def proc_threads(pid: int) -> int:
    return proc_status(pid, 'Threads')


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir('/proc/self/fd'))


#: The repository's root: server scripts run from there, so ``flask_feathers`` imports.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_server_script(tmp_path: Any, source: str) -> Tuple[subprocess.Popen, int, str, Any]:
    """Run ``source`` as ``python server.py PORT`` (from the repository root): returns
    ``(process, port, url, log_path)``; the caller stops the process."""
    script = tmp_path / 'server.py'
    script.write_text(source)
    log_path = tmp_path / 'server.log'
    port = free_port()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, str(script), str(port)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
    return proc, port, f'http://127.0.0.1:{port}', log_path
