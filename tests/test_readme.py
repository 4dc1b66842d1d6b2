"""The README's quickstart runs as written and answers as the README says."""
import os
import re

import requests

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'README.rst')


def quickstart_source():
    with open(README, encoding='utf-8') as fh:
        text = fh.read()
    block = text.split('.. code-block:: python\n\n   # app.py\n', 1)[1]
    block = re.split(r'\n\S', block, 1)[0]
    return '\n'.join(line[3:] for line in block.splitlines())


def test_quickstart_runs_and_answers_like_the_readme(live_server, node):
    namespace = {'__name__': 'quickstart'}
    exec(compile(quickstart_source(), 'README.rst quickstart', 'exec'), namespace)
    server = live_server(namespace['app'])
    r = requests.post(server.url + '/todos', json={'text': 'Do something'}, timeout=5)
    assert (r.status_code, r.json()) == (201, {'text': 'Do something', 'id': 1})
    assert requests.get(server.url + '/todos', timeout=5).json() == [{'text': 'Do something',
                                                                      'id': 1}]
    r = requests.get(server.url + '/todos/7', timeout=5)
    assert r.status_code == 404 and r.json()['name'] == 'NotFound'
    out = node(f"""
    const {{ io }} = require('socket.io-client');
    const socket = io('{server.url}', {{transports: ['websocket']}});
    setTimeout(() => fail('no todos created event'), 5000);
    socket.on('todos created', (todo) => {{ out(todo); socket.close(); done(); }});
    socket.on('connect', () => socket.emit('todos::create', {{ text: 'Do something' }}, {{}}, () => {{}}));
    """)
    assert out == [{'text': 'Do something', 'id': 2}]


def test_every_configuration_key_is_documented():
    from flask_feathers.extension import DEFAULTS
    with open(README, encoding='utf-8') as fh:
        text = fh.read()
    missing = [key for key in DEFAULTS if f'``{key}``' not in text]
    assert not missing, f'README.rst does not document {missing}'


def test_readme_renders_without_errors():
    # it is also the wheel's long description: a broken table there is a broken project page
    import io

    import docutils.core

    with open(README, encoding='utf-8') as fh:
        source = fh.read()
    problems = io.StringIO()
    docutils.core.publish_doctree(source, settings_overrides={
        'report_level': 2, 'halt_level': 5, 'warning_stream': problems})
    assert problems.getvalue() == '', problems.getvalue()[:2000]
