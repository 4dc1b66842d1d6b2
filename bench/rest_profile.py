"""The REST call path in process, without a server: what one ``GET /todos`` (20 records) costs
through each app of ``servers/rest_app.py`` (``flask``, ``ff``, ``ff_hooks``), called as WSGI
apps with the environ wrk's requests give. CPU time of this thread, best of N batches, the apps
taken in turn (the machine is shared). Used to find and check what made the REST path leaner.

    .venv/bin/python bench/rest_profile.py              # microseconds per request, each app
    .venv/bin/python bench/rest_profile.py --profile ff # cProfile of one app, top functions
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'servers'))

from rest_app import create_app  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

VARIANTS = ('flask', 'ff', 'ff_hooks')
ENVIRON = EnvironBuilder(path='/todos', method='GET',
                         headers={'Host': '127.0.0.1:8000'}).get_environ()


def _start_response(*_: object) -> None:
    return None


def per_request_us(batches: int, size: int) -> dict:
    apps = {variant: create_app(variant).wsgi_app for variant in VARIANTS}
    for wsgi in apps.values():  # warm-up
        for _ in range(size):
            b''.join(wsgi(dict(ENVIRON), _start_response))
    best = {variant: float('inf') for variant in apps}
    for _ in range(batches):
        for variant, wsgi in apps.items():
            started = time.thread_time()
            for _ in range(size):
                b''.join(wsgi(dict(ENVIRON), _start_response))
            best[variant] = min(best[variant], (time.thread_time() - started) / size * 1e6)
    return best


def profile(variant: str, requests: int) -> None:
    wsgi = create_app(variant).wsgi_app
    for _ in range(200):
        b''.join(wsgi(dict(ENVIRON), _start_response))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        b''.join(wsgi(dict(ENVIRON), _start_response))
    profiler.disable()
    pstats.Stats(profiler).sort_stats('tottime').print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--profile', choices=VARIANTS, help='cProfile this app instead')
    parser.add_argument('--batches', type=int, default=30)
    parser.add_argument('--size', type=int, default=500, help='requests per batch')
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.batches * args.size)
        return
    best = per_request_us(args.batches, args.size)
    for variant, us in best.items():
        extra = '' if variant == 'flask' else f'  (+{us - best["flask"]:.1f} us over flask)'
        print(f'{variant:9} {us:6.1f} us per request{extra}')


if __name__ == '__main__':
    main()
