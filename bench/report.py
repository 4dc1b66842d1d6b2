"""Turns ``results/results.json`` into ``results.md`` (Markdown tables) and ``results.png``.

Run alone to redo the report of the last run: ``python bench/report.py``.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

LABELS = {'ff': 'flask_feathers', 'flask': 'Flask-SocketIO by hand', 'f5': 'Feathers 5 (Node)'}


#: the figure that ranks the rounds of a scenario
PRIMARY = {'rpc': ('throughput',), 'fanout': ('deliveries_per_s',), 'slow': ('extra_ms',),
           'hold': ('held',)}


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
        rows.append((f'(gain) company channel vs the seed filter method, {n} clients',
                     _fmt(ours, ' deliveries/s'), 'flask_feathers seed filter',
                     _fmt(seed, ' deliveries/s'),
                     'n/a' if not seed else f'{ours / seed:.2f}x', '> 1x',
                     'n/a' if not seed else ('pass' if ours > seed else 'miss')))
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
    return rows


def details(results: Dict[str, Any]) -> List[str]:
    lines = ['| scenario | server | transport | figure | latency p50 / p99 (ms) |',
             '|---|---|---|---|---|']
    seen = set()
    for first in results['runs']:
        ident = (first['server'], first['transport'], first['scenario'], first.get('clients'),
                 first.get('service'))
        if ident in seen:
            continue
        seen.add(ident)
        rounds = [run for run in results['runs'] if (run['server'], run['transport'],
                  run['scenario'], run.get('clients'), run.get('service')) == ident]
        run = _median_run(rounds)
        r, s = run['result'], run['scenario']
        who, tr = LABELS[run['server']], run['transport']
        if len(rounds) > 1:
            who += f' (median of {len(rounds)})'
        if r.get('error'):
            name = s + (f" {run.get('service')} x{run.get('clients')}" if s == 'fanout' else '')
            lines.append(f'| {name} | {who} | {tr} | error: {r["error"][:80]} | |')
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
             'absolute numbers are noisy, ratios come from the same run).', '',
             '## Targets', '',
             '| target | flask_feathers | baseline | baseline figure | ratio | goal | result |',
             '|---|---|---|---|---|---|---|']
    for row in targets(results):
        lines.append('| ' + ' | '.join(row) + ' |')
    lines += ['', '## Every measurement', ''] + details(results) + ['']
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
