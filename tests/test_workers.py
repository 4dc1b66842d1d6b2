"""The worker pool of the connection layer (flask_feathers/transport/workers.py): runnable
threads are bounded, waits marked with ``blocking()`` free their place at once, and waits nobody
marked still never starve the queue."""
from __future__ import annotations

import threading
import time
from typing import Set

from flask_feathers.transport import Workers, blocking


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_burst_of_short_tasks_runs_on_the_soft_max_threads_not_one_each():
    pool = Workers(name='test-burst', soft_max=4, grace=0.05, idle_timeout=0.5)
    threads: Set[int] = set()
    done = threading.Semaphore(0)

    def task() -> None:
        threads.add(threading.get_ident())
        spin(0.002)  # CPU work: more threads would only fight over the GIL
        done.release()

    for _ in range(300):
        pool.submit(task)
    for i in range(300):
        assert done.acquire(timeout=30), f'only {i} of 300 tasks ran within 30 s'
    # The queue kept moving, so the watcher had no reason to add threads (it starts one only
    # when no task got a thread for 50 ms; a stall of the test machine may cause a few).
    assert len(threads) <= 8, f'300 short tasks ran on {len(threads)} threads'


def test_a_wait_marked_blocking_lets_queued_work_run_at_once():
    # grace of 60 s: only the blocking() marks can get the third task a thread in time
    pool = Workers(name='test-blocking', soft_max=2, grace=60, idle_timeout=0.5)
    release = threading.Event()
    ran = threading.Event()

    def waiter() -> None:
        with blocking():
            release.wait(30)

    pool.submit(waiter)
    pool.submit(waiter)
    pool.submit(ran.set)
    try:
        assert ran.wait(10), 'a task queued behind two marked waits did not run within 10 s'
        assert pool.threads == 3
    finally:
        release.set()


def test_an_unmarked_wait_still_lets_the_queue_move_after_the_grace():
    pool = Workers(name='test-unmarked', soft_max=1, grace=0.05, idle_timeout=0.5)
    release = threading.Event()
    ran = threading.Event()
    pool.submit(release.wait, 30)  # holds the only runnable place, unmarked
    pool.submit(ran.set)
    try:
        assert ran.wait(10), 'a task queued behind an unmarked wait did not run within 10 s'
    finally:
        release.set()


def test_blocking_outside_a_worker_thread_does_nothing():
    with blocking():
        pass
