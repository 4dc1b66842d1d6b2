"""Turns ``results/results.json`` into ``results.md`` (Markdown tables) and ``results.png``.

Run alone to redo the report of the last run: ``python bench/report.py``.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

LABELS = {'ff': 'flask_feathers', 'flask': 'Flask-SocketIO by hand', 'f5': 'Feathers 5 (Node)'}
#: the rest scenario's servers (gunicorn gthread for the Python ones)
REST_LABELS = {'ff': 'flask_feathers', 'flaskview': 'bare Flask view',
               'f5': 'Feathers 5 on Koa (Node)'}


#: the figure that ranks the rounds of a scenario
PRIMARY = {'rpc': ('throughput',), 'fanout': ('deliveries_per_s',), 'slow': ('extra_ms',),
           'hold': ('held',), 'hold10k': ('connected',), 'sustained': ('deliveries_per_s',),
           'storm': ('connected',), 'rest': ('rps',)}

#: scenarios with tables of their own (see many_clients)
OWN_TABLES = ('storm', 'hold10k', 'sustained')
KINDS = {'ctodos': 'seed filter', 'ptodos': 'channel filter', 'ktodos': 'company channel',
         'todos': 'no filter'}
F5_KINDS = {'ctodos': 'channel filter', 'ktodos': 'company channel', 'todos': 'no filter'}


def _matches(results: Dict[str, Any], server: str, transport: str, scenario: str,
             **match: Any) -> List[Dict[str, Any]]:
    return [run for run in results['runs']
            if (run['server'], run['transport'], run['scenario']) == (server, transport, scenario)
            and all(run.get(k) == v for k, v in match.items())]


def _median_run(runs: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The round whose primary figure is the median (the lower one of two); failed rounds rank
    lowest."""
    if not runs:
        return None
    key = PRIMARY.get(runs[0]['scenario'], ())
    ranked = sorted(runs, key=lambda run: (_num(run['result'], *key) is not None,
                                           _num(run['result'], *key) or 0))
    return ranked[(len(ranked) - 1) // 2]


def _find(results: Dict[str, Any], server: str, transport: str, scenario: str,
          **match: Any) -> Optional[Dict[str, Any]]:
    run = _median_run(_matches(results, server, transport, scenario, **match))
    return run['result'] if run is not None else None


def _num(result: Optional[Dict[str, Any]], *path: str) -> Optional[float]:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or value.get('error'):
            return None
        value = value.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fmt(value: Optional[float], unit: str = '') -> str:
    if value is None:
        return 'n/a'
    if abs(value) >= 100:
        text = f'{value:,.0f}'
    elif abs(value) >= 10:
        text = f'{value:.1f}'
    else:
        text = f'{value:.2f}'
    return f'{text}{unit}'


def _latency(result: Optional[Dict[str, Any]], key: str) -> str:
    p50, p99 = _num(result, key, 'p50'), _num(result, key, 'p99')
    return 'n/a' if p50 is None else f'{_fmt(p50)} / {_fmt(p99)}'


def targets(results: Dict[str, Any]) -> List[Tuple[str, ...]]:
    """(target, flask_feathers, baseline, baseline figure, ratio, goal, result) rows."""
    rows: List[Tuple[str, ...]] = []

    def ratio_row(name: str, ours: Optional[float], base_label: str, base: Optional[float],
                  goal: float, unit: str) -> None:
        ratio = ours / base if ours is not None and base else None
        verdict = 'n/a' if ratio is None else ('pass' if ratio >= goal else 'miss')
        rows.append((name, _fmt(ours, unit), base_label, _fmt(base, unit),
                     'n/a' if ratio is None else f'{ratio:.2f}x', f'>= {goal}x', verdict))

    if any(r['scenario'] == 'rpc' for r in results['runs']):
        ratio_row('RPC throughput, 50 clients x 4 in flight',
                  _num(_find(results, 'ff', 'socketio', 'rpc'), 'throughput'),
                  LABELS['flask'], _num(_find(results, 'flask', 'socketio', 'rpc'), 'throughput'),
                  0.9, ' calls/s')
    sizes = sorted({r['clients'] for r in results['runs'] if r['scenario'] == 'fanout'
                    and r['transport'] == 'socketio'})
    for n in sizes:
        ratio_row(f'unfiltered fan-out to {n}',
                  _num(_find(results, 'ff', 'socketio', 'fanout', clients=n, service='todos'),
                       'deliveries_per_s'),
                  f'{LABELS["flask"]} broadcast',
                  _num(_find(results, 'flask', 'socketio', 'fanout', clients=n, service='todos'),
                       'deliveries_per_s'), 0.9, ' deliveries/s')
    if 500 in sizes:
        f5 = _num(_find(results, 'f5', 'socketio', 'fanout', clients=500, service='ctodos'),
                  'deliveries_per_s')
        ratio_row('company-filtered fan-out to 500, seed filter `created(data, params)`',
                  _num(_find(results, 'ff', 'socketio', 'fanout', clients=500, service='ctodos'),
                       'deliveries_per_s'), f'{LABELS["f5"]} channel filter', f5, 0.5,
                  ' deliveries/s')
        channel = _find(results, 'ff', 'socketio', 'fanout', clients=500, service='ptodos')
        if channel is not None:
            ratio_row('company-filtered fan-out to 500, channel filter (`svc.publish`)',
                      _num(channel, 'deliveries_per_s'), f'{LABELS["f5"]} channel filter', f5,
                      0.5, ' deliveries/s')
        # Not a target: how far the same stack gets without flask_feathers (the ceiling).
        hand = _num(_find(results, 'flask', 'socketio', 'fanout', clients=500, service='ctodos'),
                    'deliveries_per_s')
        rows.append(('(context) the same with a room per company, Flask-SocketIO by hand',
                     _fmt(hand, ' deliveries/s'), f'{LABELS["f5"]} channel filter',
                     _fmt(f5, ' deliveries/s'),
                     'n/a' if not hand or not f5 else f'{hand / f5:.2f}x', '-', '-'))
    # Channels (Feathers 5's model): a channel per company joined on connect, no per-client call.
    for n in (500, 1000):
        if n not in sizes:
            continue
        ours = _num(_find(results, 'ff', 'socketio', 'fanout', clients=n, service='ktodos'),
                    'deliveries_per_s')
        if ours is None:
            continue
        ratio_row(f'company-channel fan-out to {n} (`api.channel`), vs Feathers 5 company channel',
                  ours, f'{LABELS["f5"]} company channel',
                  _num(_find(results, 'f5', 'socketio', 'fanout', clients=n, service='ktodos'),
                       'deliveries_per_s'), 0.5, ' deliveries/s')
        seed = _num(_find(results, 'ff', 'socketio', 'fanout', clients=n, service='ctodos'),
                    'deliveries_per_s')
        # Context, not a target: channels were once the fast way; since the seed's filters run
        # connection-major (dispatch.py) they are as fast or faster, so there is no gain to claim.
        rows.append((f'(context) company channel vs the seed filter method, {n} clients',
                     _fmt(ours, ' deliveries/s'), 'flask_feathers seed filter',
                     _fmt(seed, ' deliveries/s'),
                     'n/a' if not seed else f'{ours / seed:.2f}x', '-', '-'))
    for transport in ('socketio', 'primus'):
        slow = _find(results, 'ff', transport, 'slow')
        if slow is None:
            continue
        extra = _num(slow, 'extra_ms')
        rows.append((f'1 s filter on one client, {transport}: extra latency for the 99 others',
                     _fmt(extra, ' ms'), 'the same fan-out without it',
                     _fmt(_num(slow, 'without', 'last_ms', 'p50'), ' ms'), '-', '< 50 ms',
                     'n/a' if extra is None else ('pass' if extra < 50 else 'miss')))
    for transport in ('socketio', 'primus'):
        hold = _find(results, 'ff', transport, 'hold')
        if hold is None:
            continue
        held = _num(hold, 'held')
        base = _num(_find(results, 'f5', 'socketio', 'hold'), 'held')
        rows.append((f'concurrent connections held, {transport}', _fmt(held), LABELS['f5'],
                     _fmt(base), 'n/a' if not held or not base else f'{held / base:.2f}x',
                     '>= 1,000', 'n/a' if held is None else ('pass' if held >= 1000 else 'miss')))
    rows += storm_targets(results) + hold10k_targets(results) + sustained_targets(results)
    rows += rest_targets(results)
    return rows


def rest_summary(results: Dict[str, Any], server: str, hooks: int) -> Optional[Dict[str, Any]]:
    """One REST server's slices together: requests / seconds over all of them (``rps``), the same
    per CPU-second the server used (``cpu_rps``), the median of the slices' latency p50 and p99,
    the slices' own figures, the warm-up, the busiest CPU share of the load generator."""
    runs = _matches(results, server, 'rest', 'rest', hooks=hooks)
    if not runs:
        return None
    slices = [r['result'] for r in runs]
    good = [r for r in slices if not r.get('error') and r.get('requests') and r.get('duration_s')]
    first = slices[0]
    out: Dict[str, Any] = {'slices': [r.get('rps') for r in slices],
                           'errors': [r['error'] for r in slices if r.get('error')],
                           'warmup': first.get('warmup') or {}, 'body_bytes': first.get('body_bytes')}
    if not good:
        return dict(out, error=(out['errors'] or ['no measurement'])[0])
    requests = sum(r['requests'] for r in good)
    seconds = sum(r['duration_s'] for r in good)
    cpu = sum(r.get('server_cpu_s') or 0 for r in good)

    def median(values: List[float]) -> Optional[float]:
        values = sorted(v for v in values if v is not None)
        return values[(len(values) - 1) // 2] if values else None
    out.update(rps=requests / seconds, requests=requests, seconds=seconds,
               cpu_rps=requests / cpu if cpu else None,
               server_cpu=cpu / sum(r.get('elapsed') or r['duration_s'] for r in good),
               loadgen_cpu=max(r.get('loadgen_cpu') or 0 for r in good),
               latency_ms={'p50': median([(r.get('latency_ms') or {}).get('p50') for r in good]),
                           'p99': median([(r.get('latency_ms') or {}).get('p99') for r in good])})
    return out


def rest_targets(results: Dict[str, Any]) -> List[Tuple[str, ...]]:
    """REST find of 20 records: flask_feathers (no hooks, three hooks) and Feathers 5 on Koa
    against a bare Flask view, all served on one core."""
    if not any(r['scenario'] == 'rest' for r in results['runs']):
        return []
    rows: List[Tuple[str, ...]] = []

    def fig(server: str, hooks: int, key: str = 'rps') -> Optional[float]:
        return _num(rest_summary(results, server, hooks), key)

    bare, unit = fig('flaskview', 0), ' req/s'
    where = 'one core: gunicorn gthread for Python, Node for Koa'
    for hooks, goal, what in ((0, 0.9, 'no hooks'),
                              (3, 0.85, '3 hooks (around timing, before check, after strip)')):
        ours = fig('ff', hooks)
        ratio = ours / bare if ours is not None and bare else None
        rows.append((f'REST find of 20 records, {what} ({where})', _fmt(ours, unit),
                     REST_LABELS['flaskview'], _fmt(bare, unit),
                     'n/a' if ratio is None else f'{ratio:.2f}x', f'>= {goal}x',
                     'n/a' if ratio is None else ('pass' if ratio >= goal else 'miss')))
    # How much of CPU 0 each server got while measured: well below 1, the rest of the machine took
    # its share, and requests/s ratios move with when it did (the slices spread that over all).
    share = {(key, hooks): _num(rest_summary(results, key, hooks), 'server_cpu')
             for key, hooks in (('ff', 0), ('ff', 3), ('flaskview', 0))}
    rows.append(('(context) share of CPU 0 the server got while measured (1 = all of it)',
                 f'{_fmt(share[("ff", 0)])} (no hooks), {_fmt(share[("ff", 3)])} (3 hooks)',
                 REST_LABELS['flaskview'], _fmt(share[('flaskview', 0)]), '-', '-', '-'))
    # The same per CPU-second of the server: what a request costs, whatever share of its core the
    # server got from the rest of the machine (context, not a target).
    bare_cpu, cpu_unit = fig('flaskview', 0, 'cpu_rps'), ' req/CPU-s'
    for hooks, what in ((0, 'no hooks'), (3, '3 hooks')):
        ours = fig('ff', hooks, 'cpu_rps')
        rows.append((f'(context) the same, {what}, per CPU-second of the server',
                     _fmt(ours, cpu_unit), REST_LABELS['flaskview'], _fmt(bare_cpu, cpu_unit),
                     'n/a' if ours is None or not bare_cpu else f'{ours / bare_cpu:.2f}x', '-',
                     '-'))
    for hooks, what in ((0, 'no hooks'), (3, '3 hooks')):
        f5 = fig('f5', hooks)
        if f5 is None:
            continue
        rows.append((f'(context) REST find of 20 records, {what}, {REST_LABELS["f5"]}',
                     _fmt(f5, unit), REST_LABELS['flaskview'], _fmt(bare, unit),
                     'n/a' if not bare else f'{f5 / bare:.2f}x', '-', '-'))
        ours = fig('ff', hooks)
        rows.append((f'(context) REST find of 20 records, {what}: flask_feathers vs '
                     f'{REST_LABELS["f5"]}', _fmt(ours, unit), REST_LABELS['f5'], _fmt(f5, unit),
                     'n/a' if ours is None else f'{ours / f5:.2f}x', '-', '-'))
    return rows


# -- storm, hold10k, sustained ----------------------------------------------------------------------
def _run(results: Dict[str, Any], server: str, scenario: str,
         **match: Any) -> Optional[Dict[str, Any]]:
    """The result of the (single) run of a many-client scenario, its server's usual transport
    (flask_feathers: both, 'mixed', where it ran so) unless ``transport`` is given."""
    runs = [run for run in results['runs'] if run['server'] == server
            and run['scenario'] == scenario and all(run.get(k) == v for k, v in match.items())]
    if 'transport' not in match and any(run.get('transport') == 'mixed' for run in runs):
        runs = [run for run in runs if run.get('transport') == 'mixed']
    return runs[-1]['result'] if runs else None


def _sizes(results: Dict[str, Any], scenario: str) -> List[int]:
    return sorted({r['clients'] for r in results['runs'] if r['scenario'] == scenario
                   and r.get('clients')})


def _ms(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value / 1000:.2f} s'


def _round(result: Optional[Dict[str, Any]], r: int) -> Optional[Dict[str, Any]]:
    rounds = (result or {}).get('rounds') or []
    return rounds[r - 1] if len(rounds) >= r else None


def _back(result: Optional[Dict[str, Any]], rnd: Optional[Dict[str, Any]], key: str) -> str:
    """'1.23 s', or why not: the scenario's error or how many were missing."""
    if rnd is None:
        err = (result or {}).get('error')
        return f'failed: {err[:70]}' if err else 'n/a'
    if rnd.get(key) is not None:
        return _ms(rnd[key])
    return f'not reached: {rnd.get("missing", "?"):,} of {result["clients"]:,} missing after ' \
           f'{result.get("bound_s", "?")} s'


def _mix_label(result: Optional[Dict[str, Any]]) -> str:
    mix = (result or {}).get('mix') or ['socketio']
    return 'half socket.io, half Primus' if 'primus' in mix else 'socket.io'


def storm_targets(results: Dict[str, Any]) -> List[Tuple[str, ...]]:
    rows: List[Tuple[str, ...]] = []
    for n in _sizes(results, 'storm'):
        ff, f5, hand = (_run(results, key, 'storm', clients=n) for key in ('ff', 'f5', 'flask'))
        same = _run(results, 'ff', 'storm', clients=n, transport='socketio')
        rounds = max(len((r or {}).get('rounds') or []) for r in (ff, f5, hand))
        rounds = max(rounds, (ff or {}).get('rounds_planned') or 0)
        key, share, limit = ('ms_100', '100%', 3000.0) if n <= 2000 else ('ms_99', '99%', 10000.0)
        for r in range(1, rounds + 1):
            ours, base = _round(ff, r), _round(f5, r)
            mine = ours.get(key) if ours else None
            theirs = base.get(key) if base else None
            ratio = mine / theirs if mine is not None and theirs else None
            if n <= 2000:
                goal = f'<= {limit / 1000:.0f} s and <= 1.2x'
                ok = mine is not None and mine <= limit and ratio is not None and ratio <= 1.2
            else:
                goal = f'<= {limit / 1000:.0f} s'
                ok = mine is not None and mine <= limit
            rows.append((f'reconnect storm, {n:,} clients ({_mix_label(ff)}), round {r}: '
                         f'time until {share} are back', _back(ff, ours, key), LABELS['f5'],
                         _back(f5, base, key), 'n/a' if ratio is None else f'{ratio:.2f}x', goal,
                         'pass' if ok else 'miss'))
            contexts = [(LABELS['flask'], hand)]
            if same is not None:
                contexts.append((f'{LABELS["ff"]} with socket.io-client only (the clients '
                                 'Feathers 5 gets)', same))
            for label, other in contexts:
                other_round = _round(other, r)
                other_ms = other_round.get(key) if other_round else None
                rows.append((f'(context) the same round, {label}', _back(other, other_round, key),
                             LABELS['f5'], _back(f5, base, key),
                             'n/a' if other_ms is None or not theirs
                             else f'{other_ms / theirs:.2f}x', '-', '-'))
        if ff is None:
            continue
        # after each round: threads and RSS back to where they were, the next broadcast reaches all
        cells, ok_all, bcast, bcast_ok = [], True, [], True
        for r in range(1, rounds + 1):
            rnd = _round(ff, r)
            if rnd is None or not rnd.get('before') or not rnd.get('after'):
                cells.append(f'r{r}: n/a')
                ok_all = bcast_ok = False
                continue
            b, a = rnd['before'], rnd['after']
            dt = a['threads'] - b['threads']
            drss = (a['rss_kb'] - b['rss_kb']) / b['rss_kb'] * 100 if b['rss_kb'] else 0.0
            ok_all = ok_all and dt <= 5 and drss <= 10
            cells.append(f'r{r}: {b["threads"]}->{a["threads"]} threads, '
                         f'{b["rss_kb"] / 1024:.0f}->{a["rss_kb"] / 1024:.0f} MB')
            bc = rnd.get('broadcast') or {}
            bcast.append(f'r{r}: {bc.get("received", 0):,}/{n:,}'
                         + (' (the idle producer client had been dropped)'
                            if bc.get('producer_dropped') else ''))
            bcast_ok = bcast_ok and bool(bc.get('ok'))
        if n <= 2000:
            rows.append((f'reconnect storm, {n:,} clients: threads and RSS 5 s after each round '
                         '(before -> after)', '; '.join(cells), '-', '-', '-',
                         '<= +5 threads, <= +10% RSS', 'pass' if ok_all else 'miss'))
        f5_bcast = '; '.join(f'r{r}: {((_round(f5, r) or {}).get("broadcast") or {}).get("received", 0):,}'
                             for r in range(1, rounds + 1))
        rows.append((f'reconnect storm, {n:,} clients: clients that got the broadcast after each '
                     'round', '; '.join(bcast) or 'n/a', LABELS['f5'], f5_bcast, '-', f'all {n:,}',
                     'pass' if bcast_ok else 'miss'))
    return rows


def hold10k_targets(results: Dict[str, Any]) -> List[Tuple[str, ...]]:
    rows: List[Tuple[str, ...]] = []
    for n in _sizes(results, 'hold10k'):
        ff, f5, hand = (_run(results, key, 'hold10k', clients=n) for key in ('ff', 'f5', 'flask'))

        def held(result: Optional[Dict[str, Any]]) -> str:
            if result is None:
                return 'n/a'
            bc = result.get('broadcast') or {}
            text = (f'{result.get("alive", result.get("connected", 0)) or 0:,} alive, '
                    f'{bc.get("received", 0):,} got the broadcast')
            return text + (f' ({result["error"][:60]})' if result.get('error') else '')

        rows.append((f'{n:,} connections on one process ({_mix_label(ff)}), each gets a broadcast',
                     held(ff), LABELS['f5'], held(f5), '-', f'all {n:,}',
                     'pass' if ff and ff.get('held') and not ff.get('error') else 'miss'))
        ours, base = _num(ff, 'per_conn_kb'), _num(f5, 'per_conn_kb')
        rows.append((f'{n:,} connections: server RSS per connection',
                     _fmt(ours, ' KB'), LABELS['f5'], _fmt(base, ' KB'),
                     'n/a' if ours is None or not base else f'{ours / base:.2f}x', '<= 40 KB',
                     'pass' if ours is not None and ours <= 40 and ff and ff.get('held')
                     and not ff.get('error') else 'miss'))
        hand_kb = _num(hand, 'per_conn_kb')
        rows.append((f'(context) {n:,} connections, {LABELS["flask"]}',
                     f'{held(hand)}, {_fmt(hand_kb, " KB")}/conn', LABELS['f5'],
                     f'{_fmt(base, " KB")}/conn',
                     'n/a' if hand_kb is None or not base else f'{hand_kb / base:.2f}x', '-', '-'))
    return rows


def _sustained_cell(result: Optional[Dict[str, Any]]) -> str:
    if result is None:
        return 'n/a'
    if result.get('error') and result.get('deliveries_per_s') is None:
        return f'failed: {result["error"][:70]}'
    text = (f'{_fmt(_num(result, "deliveries_per_s"))} deliveries/s; last +'
            f'{_fmt(result.get("last_ack_to_last_delivery_ms"))} ms after the last ack')
    missing = result.get('missing') or 0
    return text + (f'; {missing:,} of {result.get("expected", 0):,} missing' if missing else
                   '; none missing')


def _sustained_rate(result: Optional[Dict[str, Any]]) -> Optional[float]:
    if result is None or (result.get('error') and result.get('deliveries_per_s') is None):
        return None
    value = result.get('deliveries_per_s')
    return value if isinstance(value, (int, float)) else None


def sustained_targets(results: Dict[str, Any]) -> List[Tuple[str, ...]]:
    rows: List[Tuple[str, ...]] = []
    runs = [r for r in results['runs'] if r['scenario'] == 'sustained']
    for n in _sizes(results, 'sustained'):
        for transport in ('socketio', 'primus'):
            for service in ('ctodos', 'ptodos', 'ktodos', 'todos'):
                ours = _run(results, 'ff', 'sustained', clients=n, service=service,
                            transport=transport)
                if ours is None:
                    continue
                f5_service = 'ctodos' if service == 'ptodos' else service
                base = _run(results, 'f5', 'sustained', clients=n, service=f5_service)
                mine, theirs = _sustained_rate(ours), _sustained_rate(base)
                ratio = mine / theirs if mine is not None and theirs else None
                name = (f'sustained fan-out, {n:,} clients, {KINDS[service]} (`{service}`), '
                        f'{transport}')
                base_label = f'{LABELS["f5"]} {F5_KINDS[f5_service]}' + (
                    ' (socket.io)' if transport == 'primus' else '')
                if service == 'todos':
                    rows.append((f'(context) {name}', _sustained_cell(ours), base_label,
                                 _sustained_cell(base),
                                 'n/a' if ratio is None else f'{ratio:.2f}x', '-', '-'))
                    continue
                last = ours.get('last_ack_to_last_delivery_ms')
                ok = (ratio is not None and ratio >= 1.0 and last is not None and last <= 100
                      and not ours.get('missing'))
                rows.append((name, _sustained_cell(ours), base_label, _sustained_cell(base),
                             'n/a' if ratio is None else f'{ratio:.2f}x',
                             '>= 1.0x; all delivered <= 100 ms after the last ack',
                             'pass' if ok else 'miss'))
        hand = _run(results, 'flask', 'sustained', clients=n, service='ctodos')
        if hand is not None:
            base = _run(results, 'f5', 'sustained', clients=n, service='ctodos')
            mine, theirs = _sustained_rate(hand), _sustained_rate(base)
            rows.append((f'(context) sustained fan-out, {n:,} clients, {LABELS["flask"]}, '
                         'room per company', _sustained_cell(hand),
                         f'{LABELS["f5"]} channel filter', _sustained_cell(base),
                         'n/a' if mine is None or not theirs else f'{mine / theirs:.2f}x',
                         '-', '-'))
    del runs
    return rows


def _counts(counts: Optional[Dict[str, int]]) -> str:
    return ', '.join(f'{k} {v:,}' for k, v in sorted((counts or {}).items()))


def _hold_note(res: Dict[str, Any]) -> str:
    parts = []
    if res.get('alive_by'):
        parts.append(f'alive: {_counts(res["alive_by"])}')
    if res.get('drops'):
        parts.append(f'ended after connecting: {_counts(res["drops"])}')
    if res.get('connect_errors'):
        parts.append(f'could not connect: {_counts(res["connect_errors"])}')
    if res.get('error'):
        parts.append(f'error: {res["error"][:160]}')
    return '; '.join(parts)


def many_clients(results: Dict[str, Any]) -> List[str]:
    """The storm, hold10k and sustained measurements, one table each."""
    lines: List[str] = []
    storms = [r for r in results['runs'] if r['scenario'] == 'storm']
    if storms:
        lines += ['', '### Reconnect storm', '',
                  'Every client closes at the same moment, then all reconnect at the same moment '
                  '(1 s later); times from the reconnect, over all the clients of the run (a '
                  'client not back within the bound is missing, and stays out of later rounds). '
                  'Threads and RSS of the server: before the round, peak (every 100 ms from the '
                  'close until the after sample), 5 s after the round. "client loop": how long the '
                  'load generator took to start every reconnect. "listen queue overflows": the '
                  "kernel's TcpExt ListenOverflows over the round (connection attempts dropped "
                  "because the server's listen queue was full; counted for the whole machine), "
                  'each one costs its client a SYN retransmission (1 s, then 3 s, 7 s, 15 s, '
                  '31 s after the first). "load generator CPU": what the busiest load generator '
                  'process used from the reconnect until its last client was back; close to the '
                  '100% time, the load generator was what the round waited for, not the server.',
                  '',
                  '| server | clients | round | back | 50% | 90% | 99% | 100% | next broadcast | '
                  'threads before / peak / after | RSS MB before / peak / after | client loop | '
                  'load generator CPU | listen queue overflows |',
                  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
        for run in storms:
            res = run['result']
            who = f'{LABELS[run["server"]]} ({_mix_label(res)})'
            n = res.get('clients', run.get('clients'))
            head = f'| {who} | {n:,} (connected {res.get("connected", 0):,} in ' \
                   f'{_ms(res.get("connect_ms"))}; listen queue {res.get("listen_backlog")}) |'
            for rnd in res.get('rounds') or []:
                bc = rnd.get('broadcast') or {}
                b, p, a = (rnd.get(k) or {} for k in ('before', 'peak', 'after'))
                errors = ', '.join(f'{k}: {v:,}' for k, v in (rnd.get('errors') or {}).items())
                lines.append(
                    f'{head} {rnd["round"]} | {rnd["back"]:,}/{rnd["tried"]:,}'
                    f'{" (" + errors + ")" if errors else ""} | '
                    + ' | '.join(_ms(rnd.get(k)) if rnd.get(k) is not None else 'not reached'
                                 for k in ('ms_50', 'ms_90', 'ms_99', 'ms_100'))
                    + f' | {bc.get("received", 0):,}/{n:,}'
                    f'{"; ended after connecting: " + _counts(bc["drops"]) if bc.get("drops") else ""}'
                    f'{" (the idle producer client had been dropped)" if bc.get("producer_dropped") else ""}'
                    f'{" (" + bc["error"] + ")" if bc.get("error") else ""} | '
                    f'{b.get("threads")} / {p.get("threads")} / {a.get("threads")} | '
                    f'{_fmt((b.get("rss_kb") or 0) / 1024)} / {_fmt((p.get("rss_kb") or 0) / 1024)}'
                    f' / {_fmt((a.get("rss_kb") or 0) / 1024)} | '
                    f'{_fmt(rnd.get("reconnect_loop_ms"))} ms | '
                    f'{_fmt(rnd.get("client_cpu_ms"))} ms | '
                    f'{(rnd.get("kernel") or {}).get("ListenOverflows", "n/a")} |')
            if res.get('error'):
                lines.append(f'{head} - | error: {res["error"][:200]} |||||||||')
    holds = [r for r in results['runs'] if r['scenario'] == 'hold10k']
    if holds:
        lines += ['', '### Connections held', '',
                  '| server | clients | connected (time) | alive | got the broadcast | '
                  'threads | RSS MB before / after | KB per connection | note |',
                  '|---|---|---|---|---|---|---|---|---|']
        for run in holds:
            res = run['result']
            bc = res.get('broadcast') or {}
            b, a = res.get('before') or {}, res.get('after') or {}
            lines.append(
                f'| {LABELS[run["server"]]} | {res.get("clients", run.get("clients")):,} '
                f'({_mix_label(res)}) | {res.get("connected", 0):,} ({_ms(res.get("connect_ms"))})'
                f' | {res.get("alive", "n/a")} | {bc.get("received", 0):,} | '
                f'{b.get("threads")} -> {a.get("threads")} (peak '
                f'{(res.get("peak") or {}).get("threads")}) | '
                f'{_fmt((b.get("rss_kb") or 0) / 1024)} / {_fmt((a.get("rss_kb") or 0) / 1024)} | '
                f'{_fmt(_num(res, "per_conn_kb"))} | {_hold_note(res)} |')
    sus = [r for r in results['runs'] if r['scenario'] == 'sustained']
    if sus:
        lines += ['', '### Sustained fan-out', '',
                  '2,000 creates, 32 in flight, spread over the listeners; latency from the ack '
                  'of the create to each delivery (negative: the event came before the ack).', '',
                  '| server | transport | clients | service | creates/s | deliveries/s | '
                  'missing 5 s after the last ack / at the end | last ack -> last delivery | '
                  'latency from ack p50 / p99 (ms) | RSS end (MB) | threads end | note |',
                  '|---|---|---|---|---|---|---|---|---|---|---|---|']
        for run in sus:
            res = run['result']
            service = res.get('service', run.get('service'))
            kind = KINDS.get(service, service) if run['server'] == 'ff' else (
                'room per company' if run['server'] == 'flask' else F5_KINDS.get(service))
            note = res.get('error') or ''
            if res.get('failed'):
                note += f'; {res["failed"]} creates failed ({_counts(res.get("failures"))})'
            if res.get('not_sent'):
                note += f'; {res["not_sent"]} creates not sent'
            if res.get('drops'):
                note += f'; listeners ended after connecting: {_counts(res["drops"])}'
            note = note.strip('; ')
            lines.append(
                f'| {LABELS[run["server"]]} | {run["transport"]} | {res.get("clients", 0):,} | '
                f'{kind} (`{service}`) | {_fmt(_num(res, "creates_per_s"))} | '
                f'{_fmt(_num(res, "deliveries_per_s"))} | '
                f'{res.get("missing_at_5s", "n/a")} / {res.get("missing", "n/a")} of '
                f'{res.get("expected", 0):,} | {_fmt(res.get("last_ack_to_last_delivery_ms"))} ms | '
                f'{_latency(res, "latency_from_ack_ms")} | {_fmt(_num(res, "rss_end_mb"))} | '
                f'{res.get("threads_end", "n/a")} | {note[:240]} |')
    return lines


def details(results: Dict[str, Any]) -> List[str]:
    lines = ['| scenario | server | transport | figure | latency p50 / p99 (ms) |',
             '|---|---|---|---|---|']
    seen = set()
    for first in results['runs']:
        if first['scenario'] in OWN_TABLES:
            continue
        ident = (first['server'], first['transport'], first['scenario'], first.get('clients'),
                 first.get('service'), first.get('hooks'))
        if ident in seen:
            continue
        seen.add(ident)
        rounds = [run for run in results['runs'] if (run['server'], run['transport'],
                  run['scenario'], run.get('clients'), run.get('service'), run.get('hooks'))
                  == ident]
        run = _median_run(rounds)
        r, s = run['result'], run['scenario']
        who = (REST_LABELS if s == 'rest' else LABELS)[run['server']]
        tr = run['transport']
        if len(rounds) > 1:
            who += f' (median of {len(rounds)})'
        if r.get('error'):
            name = s + (f" {run.get('service')} x{run.get('clients')}" if s == 'fanout' else '')
            lines.append(f'| {name} | {who} | {tr} | error: {r["error"][:80]} | |')
        elif s == 'rest':
            summary = rest_summary(results, run['server'], run.get('hooks')) or {}
            warm = summary.get('warmup') or {}
            every = ', '.join(_fmt(v) for v in summary.get('slices') or [])
            errors = '; '.join(summary.get('errors') or [])[:120]
            lines.append(f'| REST find of 20 records ({run.get("hooks")} hooks; '
                         f'{summary.get("body_bytes")} bytes) | {REST_LABELS[run["server"]]} | '
                         f'rest | {_fmt(_num(summary, "rps"))} req/s over '
                         f'{_fmt(_num(summary, "seconds"))} s (slices: {every}; warm-up before: '
                         f'{_fmt(warm.get("rps"))} req/s over {warm.get("seconds")} s); '
                         f'{_fmt(_num(summary, "cpu_rps"))} req per server CPU-second; CPU of one '
                         f'core: server {_fmt(_num(summary, "server_cpu"))}, wrk at most '
                         f'{_fmt(_num(summary, "loadgen_cpu"))}'
                         f'{"; errors: " + errors if errors else ""} | '
                         f'{_latency(summary, "latency_ms")} (median of the slices) |')
        elif s == 'rpc':
            lines.append(f'| create with ack, 50 clients x 4 in flight | {who} | {tr} | '
                         f'{_fmt(_num(r, "throughput"))} calls/s | {_latency(r, "latency_ms")} |')
        elif s == 'fanout':
            kind = {'ctodos': 'company filter', 'ptodos': 'company channel filter',
                    'ktodos': 'company channel'}.get(
                run['service'], 'no filter')
            lost = (r.get('lost') or 0) + (r.get('burst_lost') or 0)
            lost_text = f', {lost} events lost' if lost else ''
            lines.append(f'| fan-out to {run["clients"]} ({kind}, {r.get("recipients")} get it) | '
                         f'{who} | {tr} | {_fmt(_num(r, "deliveries_per_s"))} deliveries/s'
                         f'{lost_text} | {_latency(r, "last_ms")} (last client) |')
        elif s == 'slow':
            lines.append(f'| company filter, 100 clients, + one whose filter sleeps 1 s | {who} | '
                         f'{tr} | +{_fmt(_num(r, "extra_ms"))} ms | without '
                         f'{_latency(r.get("without"), "last_ms")}, with '
                         f'{_latency(r.get("with_slow"), "last_ms")} |')
        elif s == 'hold':
            steps = r.get('steps') or []
            for step in steps:
                lines.append(f'| hold {step["target"]} connections | {who} | {tr} | '
                             f'{step["alive"]} alive, {step["delivered"]}/{step["expected"]} '
                             f'deliveries, RSS {_fmt(step.get("rss_mb"))} MB, '
                             f'{_fmt(step.get("per_conn_kb"))} KB/conn | '
                             f'{"held" if step["held"] else "NOT held"} |')
    return lines


def rst_targets(results: Dict[str, Any]) -> str:
    """The targets table as reST (``results.rst``, pasted into README.rst's Benchmarks section)."""
    header = ('target', 'flask_feathers', 'baseline', 'baseline figure', 'ratio', 'goal',
              'result')
    out = ['.. list-table::', '   :header-rows: 1', '']
    for row in [header] + targets(results):
        out.append('   * - ' + row[0].replace('`', '``'))
        out += [f'     - {cell}' for cell in row[1:]]
    m = results['machine']
    out += ['', f'Machine: {m["nproc"]} cores ({m["cpu"]}), {m["memory"]} RAM, Python '
                f'{m["python"]}, Node {m["node"]}, load average at start {m["load_at_start"]}; '
                f'{results["plan"]} plan, {m["date"]}, {results.get("seconds", "?")} s.', '']
    return '\n'.join(out)


def write_report(results: Dict[str, Any], out_dir: str) -> None:
    m = results['machine']
    lines = [f'# flask_feathers benchmark ({results["plan"]} plan, {m["date"]}, '
             f'{results.get("seconds", "?")} s)', '',
             f'Machine: {m["nproc"]} cores ({m["cpu"]}), {m["memory"]} RAM, Python {m["python"]}, '
             f'Node {m["node"]}; load average at start {m["load_at_start"]} (shared machine: '
             'absolute numbers are noisy, ratios come from the same run).'
             + (f' Code: {m["commit"]}.' if m.get('commit') else ''), '',
             '## Targets', '',
             '| target | flask_feathers | baseline | baseline figure | ratio | goal | result |',
             '|---|---|---|---|---|---|---|']
    for row in targets(results):
        lines.append('| ' + ' | '.join(row) + ' |')
    table = details(results)
    lines += ['', '## Every measurement', ''] + (table if len(table) > 2 else []) + \
        many_clients(results) + ['']
    with open(os.path.join(out_dir, 'results.md'), 'w') as fh:
        fh.write('\n'.join(lines))
    with open(os.path.join(out_dir, 'results.rst'), 'w') as fh:
        fh.write(rst_targets(results))
    try:
        chart(results, os.path.join(out_dir, 'results.png'))
    except ImportError:
        print('matplotlib is missing: no results.png (pip install matplotlib)', file=sys.stderr)


def chart(results: Dict[str, Any], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    colors = {'ff': '#1f77b4', 'flask': '#ff7f0e', 'f5': '#2ca02c'}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    sizes = sorted({r['clients'] for r in results['runs'] if r['scenario'] == 'fanout'
                    and r['transport'] == 'socketio'})
    for ax, service, title in ((axes[0][0], 'todos', 'fan-out, no filter'),
                               (axes[0][1], 'ctodos', 'fan-out, company filter')):
        series = [(k, 'socketio', service, LABELS[k]) for k in LABELS]
        if service == 'ctodos':
            series.insert(1, ('ff', 'socketio', 'ptodos', 'flask_feathers channel filter'))
            series.insert(2, ('ff', 'socketio', 'ktodos', 'flask_feathers company channel'))
            series.append(('f5', 'socketio', 'ktodos', 'Feathers 5 company channel'))
        series.append(('ff', 'primus', service, 'flask_feathers (Primus)'))
        width = 0.8 / len(series)
        for i, (key, tr, svc, label) in enumerate(series):
            vals = [_num(_find(results, key, tr, 'fanout', clients=n, service=svc),
                         'deliveries_per_s') or 0 for n in sizes]
            ax.bar([x + i * width for x in range(len(sizes))], vals, width, label=label,
                   color=colors[key], alpha=0.5 if (tr == 'primus' or svc == 'ptodos') else 1.0,
                   hatch={'ptodos': '//', 'ktodos': '..'}.get(svc))
        ax.set_xticks([x + (len(series) - 1) / 2 * width for x in range(len(sizes))])
        ax.set_xticklabels([f'{n} clients' for n in sizes])
        ax.set_ylabel('deliveries/s (burst)')
        ax.set_title(title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax = axes[1][0]
    names, vals, cols = [], [], []
    for key, tr in [(k, 'socketio') for k in LABELS] + [('ff', 'primus')]:
        v = _num(_find(results, key, tr, 'rpc'), 'throughput')
        if v is not None:
            names.append(LABELS[key] + ('\n(Primus)' if tr == 'primus' else ''))
            vals.append(v)
            cols.append(colors[key])
    ax.bar(names, vals, color=cols)
    ax.set_ylabel('create calls/s')
    ax.set_title('RPC: 50 clients x 4 calls in flight')
    ax.tick_params(axis='x', labelsize=8)
    ax = axes[1][1]
    for key, tr in [(k, 'socketio') for k in LABELS] + [('ff', 'primus')]:
        hold = _find(results, key, tr, 'hold')
        steps = (hold or {}).get('steps') or []
        pts = [(s['alive'], s['rss_mb']) for s in steps if s.get('rss_mb')]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', color=colors[key],
                    linestyle='--' if tr == 'primus' else '-',
                    label=LABELS[key] + (' (Primus)' if tr == 'primus' else ''))
    ax.set_xlabel('connections alive')
    ax.set_ylabel('server RSS (MB)')
    ax.set_title('connections held and server memory')
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    m = results['machine']
    fig.suptitle(f'flask_feathers vs baselines ({m["nproc"]} cores, {m["cpu"]}, Python '
                 f'{m["python"]}, Node {m["node"]})')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, 'results')
    with open(os.path.join(out, 'results.json')) as fh:
        write_report(json.load(fh), out)
    print(open(os.path.join(out, 'results.md')).read())
