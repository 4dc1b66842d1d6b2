"""The fuzz app (tests/apps/fuzz_app.py) in a subprocess, watched from outside."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

from .waiting import ROOT, free_port, proc_status, wait_for

TESTS = os.path.join(ROOT, 'tests')
FUZZ_APP = os.path.join(TESTS, 'apps', 'fuzz_app.py')


def rss_kb(pid: int) -> int:
    return proc_status(pid, 'VmRSS')


def peak_rss_kb(pid: int) -> int:
    return proc_status(pid, 'VmHWM')


class ServerProcess:
    """The fuzz app in a subprocess on a free port; ``stats()`` asks it about itself over REST."""

    def __init__(self, options: Optional[dict] = None) -> None:
        self.port = free_port()
        self.log = open(os.path.join(TESTS, 'artifacts', f'fuzz-server-{self.port}.log'), 'w+') \
            if os.path.isdir(os.path.join(TESTS, 'artifacts')) else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, FUZZ_APP, str(self.port), json.dumps(options or {})],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
            # FUZZ_SERVER_ROOT: serve another checkout (to see a test fail before a fix)
            # two malloc arenas: RSS then tracks live memory instead of per-thread arena slack
            env={**os.environ, 'MALLOC_ARENA_MAX': '2', 'PYTHONPATH': os.environ.get('FUZZ_SERVER_ROOT', ROOT) +
                 os.pathsep + TESTS})
        line = self.proc.stdout.readline()
        if line.strip() != 'ready':
            self.stop()
            raise AssertionError(f'fuzz server did not start: {line!r}')

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stats(self) -> Dict[str, Any]:
        import requests
        with requests.get(f'{self.url}/stats', timeout=10) as r:
            r.raise_for_status()
            return r.json()

    def wait_stats(self, predicate, timeout: float, what: str) -> Dict[str, Any]:
        """Poll ``stats()`` until ``predicate(stats)``; fail saying ``what`` otherwise."""
        seen: List[Dict[str, Any]] = []

        def reached() -> Any:
            seen.append(self.stats())
            return (seen[-1],) if predicate(seen[-1]) else None
        return wait_for(reached, timeout, what, lambda: seen[-1], interval=0.1)[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        if self.log is not subprocess.DEVNULL:
            self.log.close()
