"""What ``api.run`` does for the connection layer around Werkzeug's server: room for many
sockets, a listen queue that survives a reconnect storm, and a graceful stop on SIGTERM."""
from __future__ import annotations

import contextlib
import gc
import logging
import signal
import threading
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

#: Connections the kernel may hold for ``accept`` (Werkzeug's own is 128: in a reconnect storm
#: of thousands the rest of the SYNs are dropped and those clients retry only a second later).
LISTEN_QUEUE = 4096


def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit (one descriptor per client);
    returns the limit now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning('could not raise the open-files limit from %d to %d: %s', soft, hard, exc)
            return soft
        log.info('open-files limit raised from %d to %d (one per connected client)', soft, hard)
        return hard
    log.info('open-files limit: %d (one per connected client)', soft)
    return soft


@contextlib.contextmanager
def werkzeug_listen_queue(size: int = LISTEN_QUEUE) -> Iterator[None]:
    """Werkzeug's servers made meanwhile listen with a queue of ``size``."""
    from werkzeug import serving
    before = serving.BaseWSGIServer.request_queue_size
    serving.BaseWSGIServer.request_queue_size = max(before, size)
    try:
        yield
    finally:
        serving.BaseWSGIServer.request_queue_size = before


@contextlib.contextmanager
def stop_on_sigterm(on_stop: Callable[[], Any]) -> Iterator[None]:
    """SIGTERM ends the server like Ctrl-C does (Werkzeug's server otherwise dies at once,
    dropping every socket without a close frame); ``on_stop`` runs as it ends, either way."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: Any) -> None:
            raise SystemExit(0)
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        try:
            on_stop()
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            # The process is about to end: the collections of interpreter shutdown would walk
            # every object of thousands of connections (seconds on a busy machine) for nothing.
            gc.freeze()
