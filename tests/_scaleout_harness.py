"""Real processes for the multi-process tests and the benchmark: Redis servers, app servers, writers.

Every process started here is killed by its ``stop()``; the fixtures call it in their finalizers.
"""
from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

import requests

from support.node import Node
from support.waiting import free_port, stop_process, wait_for  # noqa: F401 (wait_for: bench/)

HERE = os.path.dirname(os.path.abspath(__file__))
MULTI_APP = os.path.join(HERE, 'apps', 'multi_app.py')


class RedisServer:
    """A throw-away ``redis-server`` on a free port (no persistence), restartable on that port."""

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f'redis://127.0.0.1:{self.port}/0'

    def start(self) -> 'RedisServer':
        self.proc = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
             '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, 10, f'redis-server on port {self.port} to answer PING')
        return self

    def _ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f'redis-server on port {self.port} exited with '
                                 f'{self.proc.returncode}')
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1) as s:
                s.sendall(b'PING\r\n')
                return s.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class AppProcess:
    """``tests/apps/multi_app.py serve`` on a free port, its log in ``log_path``."""

    def __init__(self, queue_url: str, channel: str, log_path: str, name: str = 'app',
                 extra: Optional[List[str]] = None) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, MULTI_APP, 'serve', '--port', str(self.port), '--queue', queue_url,
             '--channel', channel] + list(extra or []),
            stdout=subprocess.PIPE, stderr=self._log, text=True)
        self._lines: 'queue.Queue[Optional[str]]' = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = requests.Session()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = 20.0) -> 'AppProcess':
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f'{self.name} did not print its ready line within {timeout} s; '
                                 f'log:\n{self.log()}') from None
        if line is None or 'ready' not in json.loads(line):
            raise AssertionError(f'{self.name} failed to start ({line!r}); log:\n{self.log()}')
        return self

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path) as fh:
            return fh.read()

    def create(self, items: Any) -> Any:
        response = self.session.post(f'{self.url}/todos', json=items, timeout=10)
        assert response.status_code == 201, (response.status_code, response.text)
        return response.json()

    def post(self, path: str, body: Any) -> None:
        response = self.session.post(f'{self.url}{path}', json=body, timeout=10)
        assert response.status_code == 200, (response.status_code, response.text)

    def stop(self) -> None:
        self.session.close()
        stop_process(self.proc)
        self._reader.join(5)
        self._log.close()


def produce(queue_url: str, channel: str, producer: str, count: int, log_path: str,
            sentinel: bool = True, timeout: float = 30.0) -> Dict[str, Any]:
    """Run ``multi_app.py produce`` (writer-only mode) to completion; returns its report."""
    with open(log_path, 'w') as log:
        args = [sys.executable, MULTI_APP, 'produce', '--queue', queue_url, '--channel', channel,
                '--producer', producer, '--count', str(count)] + (['--sentinel'] if sentinel else [])
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout)
    if proc.returncode != 0 or 'produced' not in proc.stdout:
        with open(log_path) as fh:
            raise AssertionError(f'writer {producer} failed ({proc.returncode}): {proc.stdout}\n'
                                 f'{fh.read()}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def items(producer: str, count: int, sentinel: bool = True) -> List[Dict[str, Any]]:
    """The records producer ``producer`` creates: alternate companies, then one sentinel each."""
    out = [{'producer': producer, 'n': n, 'company': ('acme', 'globex')[n % 2]}
           for n in range(count)]
    if sentinel:
        out += [{'producer': producer, 'company': c, 'sentinel': True}
                for c in ('acme', 'globex')]
    return out


def NodeProcess(script: str, env: Optional[Dict[str, str]] = None) -> Node:
    """A long-running Node script in tests/js (it requires its own clients) whose JSON output
    lines are read as they come (``next``, ``poll``)."""
    return Node(script, env=env, clients=False)


class SioClient:
    """A python-socketio client (websocket transport) recording the events it receives."""

    def __init__(self, url: str, user: str,
                 events: tuple = ('todos created', 'todos status', 'news')) -> None:
        import socketio
        self.user = user
        from support.clients import in_order
        self.client = in_order(socketio.Client(reconnection=False))
        self.received: Dict[str, List[Any]] = {e: [] for e in events}
        self.cond = threading.Condition()
        for event in events:
            self.client.on(event, self._recorder(event))
        self.client.connect(url, auth={'user': user}, transports=['websocket'], wait_timeout=10)

    def _recorder(self, event: str) -> Callable[[Any], None]:
        def record(data: Any) -> None:
            with self.cond:
                self.received[event].append(data)
                self.cond.notify_all()
        return record

    def events(self, event: str = 'todos created') -> List[Any]:
        with self.cond:
            return list(self.received[event])

    def wait(self, predicate: Callable[[List[Any]], bool], timeout: float, what: str,
             event: str = 'todos created') -> List[Any]:
        with self.cond:
            ok = self.cond.wait_for(lambda: predicate(self.received[event]), timeout)
            got = list(self.received[event])
        if not ok:
            raise AssertionError(f'{self.user}: timed out after {timeout} s waiting for {what}; '
                                 f'got {len(got)} {event!r} events: {got[-5:]}')
        return got

    def close(self) -> None:
        self.client.disconnect()
