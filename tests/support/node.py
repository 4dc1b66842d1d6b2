"""Node scripts with the npm clients installed in tests/js: run to the end (:func:`run_node`, the
``node`` fixture) or streamed line by line beside the test (:class:`Node`)."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

JS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'js')

#: ``out(value)`` prints one JSON line, ``done()`` ends the script, ``fail(why)`` ends it with 3.
PRELUDE = (
    "const out = (v) => process.stdout.write(JSON.stringify(v === undefined ? null : v) + '\\n');\n"
    "const done = (code) => setTimeout(() => process.exit(code || 0), 10);\n"
    "const fail = (why) => { process.stderr.write('FAIL: ' + why + '\\n'); process.exit(3); };\n"
    "process.on('unhandledRejection', (e) => fail('unhandled rejection: ' + (e && e.stack || e)));\n"
)
#: The npm clients of both transports, and the server's URL from ``SERVER_URL``.
CLIENTS = (
    "const { io } = require('socket.io-client');\n"
    "const Primus = require('primus');\n"
    "const PrimusSocket = Primus.createSocket({transformer: 'websockets',\n"
    "                                          plugin: {emitter: require('primus-emitter')}});\n"
    "const URL = process.env.SERVER_URL;\n"
)


class NodeError(AssertionError):
    pass


def installed() -> bool:
    return os.path.isdir(os.path.join(JS_DIR, 'node_modules'))


def run_node(script: str, timeout: float = 30.0, env: Optional[Dict[str, str]] = None) -> List[Any]:
    """Run ``script`` with Node in tests/js (where the npm clients are installed).

    The script prints one JSON value per line with ``out(value)``; calls ``done()`` at the end.
    Returns the printed values; fails with Node's output on a non-zero exit or a time-out.
    """
    try:
        proc = subprocess.run(['node', '-e', PRELUDE + script], cwd=JS_DIR, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as exc:
        raise NodeError(f'node script did not finish within {timeout} s\nstdout:\n{exc.stdout}\n'
                        f'stderr:\n{exc.stderr}') from None
    if proc.returncode != 0:
        raise NodeError(f'node exited with {proc.returncode}\nstdout:\n{proc.stdout}\n'
                        f'stderr:\n{proc.stderr}')
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


class Node:
    """A Node script (with :data:`CLIENTS`) running beside the test: it prints JSON lines with
    ``out(value)``; the test reads them as they come (:meth:`expect`) and may write a line to its
    stdin (:meth:`tell`)."""

    def __init__(self, script: str, url: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None, clients: bool = True) -> None:
        """``url`` is the script's ``URL`` (``SERVER_URL``); ``clients=False`` leaves out
        :data:`CLIENTS` for a script that requires its own."""
        if not installed():
            raise NodeError('the npm test clients are not installed: run scripts/test')
        extra = {'SERVER_URL': url} if url is not None else {}
        self.proc = subprocess.Popen(
            ['node', '-e', PRELUDE + (CLIENTS if clients else '') + script], cwd=JS_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **extra, **(env or {})})
        self.lines: 'queue.Queue[Optional[str]]' = queue.Queue()
        self.seen: List[Any] = []
        self.stderr: List[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: Any, out: bool) -> None:
        for line in stream:
            if out:
                self.lines.put(line)
            else:
                self.stderr.append(line)
        if out:
            self.lines.put(None)

    def next(self, timeout: float, what: str) -> Any:
        """The next JSON value the script printed; fails naming ``what`` on a time-out or an
        early exit."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise NodeError(f'node: no {what} within {timeout:g} s; printed {self.seen[-5:]}; '
                            f'stderr: {"".join(self.stderr)[-2000:]}') from None
        if line is None:
            self.lines.put(None)
            self.proc.wait(5)
            raise NodeError(f'node exited ({self.proc.returncode}) before printing {what}; '
                            f'printed {self.seen[-5:]}; stderr: {"".join(self.stderr)[-2000:]}')
        value = json.loads(line)
        self.seen.append(value)
        return value

    def expect(self, key: str, timeout: float) -> Any:
        """The value of the next printed ``{key: value}`` (other values before it are passed)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.next(deadline - time.monotonic(), repr(key))
            if isinstance(value, dict) and key in value:
                return value[key]

    def poll(self) -> Any:
        """The next printed value if there is one already, else None."""
        try:
            line = self.lines.get_nowait()
        except queue.Empty:
            return None
        if line is None:
            self.lines.put(None)
            return None
        value = json.loads(line)
        self.seen.append(value)
        return value

    def tell(self, line: str = 'go') -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for reader in self.readers:
            reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass
