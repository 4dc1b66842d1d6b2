"""Reading the code examples out of reStructuredText (README.rst and docs/*.rst) to run them.

A code example is a ``.. code-block:: <language>`` directive. A reST comment right before it,
``.. example: <how>``, changes how tests run it:

* ``pytest``: the block is a test file; it is written to a temporary folder and run with pytest.
* ``new-namespace``: the block starts afresh instead of adding to the page's earlier blocks.

Without one, every Python block of a page runs in order in one namespace (a later block may use
what an earlier one defined), as a reader typing them into one module would.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from typing import Any, Dict, Iterator, List, NamedTuple, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')
README = os.path.join(ROOT, 'README.rst')

_DIRECTIVE = re.compile(r'^(?P<indent> *)\.\. code-block:: *(?P<language>\S+) *$')
_MARKER = re.compile(r'^ *\.\. example: *(?P<how>\S+) *$')


class Block(NamedTuple):
    language: str
    code: str
    how: Optional[str]
    line: int  # 1-based line of the directive


def code_blocks(path: str) -> List[Block]:
    """Every ``code-block`` of the file, in order, with its code dedented."""
    with open(path, encoding='utf-8') as fh:
        lines = fh.read().splitlines()
    blocks = []
    for number, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match:
            continue
        indent = len(match.group('indent'))
        how = None
        previous = number - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0:
            marker = _MARKER.match(lines[previous])
            if marker:
                how = marker.group('how')
        body: List[str] = []
        index = number + 1
        while index < len(lines) and (lines[index].strip().startswith(':') and
                                      not body):  # directive options
            index += 1
        while index < len(lines):
            text = lines[index]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            body.append(text)
            index += 1
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        margin = min((len(t) - len(t.lstrip()) for t in body if t.strip()), default=0)
        code = '\n'.join(t[margin:] for t in body) + '\n'
        blocks.append(Block(match.group('language'), code, how, number + 1))
    return blocks


#: Environment variables run_python_blocks sets while a page runs.
DEMO_ENVIRON = ('FLASK_DEMO_DATABASE_URL', 'FLASK_SECRET_KEY')


def doc_pages() -> List[str]:
    return sorted(os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith('.rst'))


def run_python_blocks(path: str, workdir: str) -> Dict[str, Any]:
    """Run the page's Python blocks (see the module docstring) in ``workdir``; returns the last
    namespace. Every Feathers extension an example made is closed afterwards."""
    from flask_feathers import Feathers

    namespaces: List[Dict[str, Any]] = []
    namespace: Dict[str, Any] = {}
    before = os.getcwd()
    os.chdir(workdir)
    # the demo's create_app() reads FLASK_* variables: a database and a key of this run's own
    saved = {key: os.environ.get(key) for key in DEMO_ENVIRON}
    os.environ.update({'FLASK_DEMO_DATABASE_URL': f"sqlite:///{os.path.join(workdir, 'demo.db')}",
                       'FLASK_SECRET_KEY': 'docs-example'})
    try:
        for number, block in enumerate(code_blocks(path)):
            if block.language != 'python':
                continue
            where = f'{os.path.relpath(path, ROOT)}:{block.line}'
            if block.how == 'pytest':
                run_pytest_block(block, workdir, f'test_example_{number}.py', where)
                continue
            if block.how == 'new-namespace' or not namespace:
                namespace = {'__name__': 'docs_example'}
                namespaces.append(namespace)
            exec(compile(block.code, where, 'exec'), namespace)
    finally:
        os.chdir(before)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for seen in namespaces:
            for value in list(seen.values()):
                if isinstance(value, Feathers):
                    for state in value._states:
                        state.close()
    return namespace


def run_pytest_block(block: Block, workdir: str, name: str, where: str) -> None:
    import sys
    with open(os.path.join(workdir, name), 'w', encoding='utf-8') as fh:
        fh.write(block.code)
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', name],
                          cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'PYTHONPATH': ROOT})
    assert proc.returncode == 0, f'{where} fails under pytest:\n{proc.stdout[-4000:]}' \
                                 f'\n{proc.stderr[-2000:]}'


CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright (scripts/test installs it)."""
    from playwright import sync_api
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: run scripts/test (it installs it)"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def console_commands(code: str) -> List[tuple]:
    """``$ command`` lines of a console block with the output printed under each."""
    pairs: List[tuple] = []
    for line in code.splitlines():
        if line.startswith('$ '):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
    return [(command, '\n'.join(output)) for command, output in pairs]


def check_quickstart(path: str, live_server: Any, browser: Any, tmp_path: Any) -> None:
    """Run a quickstart as its reader would: ``app.py`` served, the curl commands answering what
    the page prints, and the browser page's Socket.IO and Primus clients creating and hearing
    todos. The page's socket.io.min.js URL is served from the npm copy the tests install."""
    blocks = code_blocks(path)
    app_blocks = [b for b in blocks if b.language == 'python' and b.code.startswith('# app.py')]
    assert len(app_blocks) == 1, f'{path}: expected one "# app.py" block'
    namespace = {'__name__': 'quickstart'}
    before = os.getcwd()
    os.chdir(str(tmp_path))  # where app.py would be: Flask finds static/ next to it
    try:
        exec(compile(app_blocks[0].code, f'{path}:{app_blocks[0].line}', 'exec'), namespace)
    finally:
        os.chdir(before)
    pages = [b for b in blocks if b.language == 'html']
    assert len(pages) == 1, f'{path}: expected one html block'
    os.makedirs(os.path.join(str(tmp_path), 'static'))
    with open(os.path.join(str(tmp_path), 'static', 'index.html'), 'w', encoding='utf-8') as fh:
        fh.write(pages[0].code)
    server = live_server(namespace['app'])
    try:
        _check_console(path, blocks, server.url)
        _check_browser_page(server.url, browser)
    finally:
        for state in namespace['api']._states:
            state.close()


def _check_console(path: str, blocks: List[Block], url: str) -> None:
    consoles = [b for b in blocks if b.language == 'console']
    assert consoles, f'{path}: no console block'
    ran = 0
    for block in consoles:
        for command, expected in console_commands(block.code):
            assert command.startswith('curl '), command
            proc = subprocess.run(command.replace('http://127.0.0.1:5000', url), shell=True,
                                  capture_output=True, text=True, timeout=30)
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout) == json.loads(expected), (command, proc.stdout)
            ran += 1
    assert ran >= 3


def _check_browser_page(url: str, browser: Any) -> None:
    from playwright import sync_api
    client = os.path.join(ROOT, 'tests', 'js', 'node_modules', 'socket.io-client', 'dist',
                          'socket.io.min.js')
    context = browser.new_context()
    outside: List[str] = []

    def route(request_route: Any) -> None:
        request_url = request_route.request.url
        if re.match(r'https://cdn\.socket\.io/4\.[0-9.]+/socket\.io\.min\.js$', request_url):
            request_route.fulfill(path=client, content_type='application/javascript')
        elif request_url.startswith(url):
            request_route.continue_()
        else:
            outside.append(request_url)
            request_route.abort()
    context.route('**/*', route)
    # what the page logs, readable from the page for wait_for_function
    context.add_init_script('window.__logged = []; const log = console.log;'
                            'console.log = (...a) => { window.__logged.push(a.join(" "));'
                            ' log(...a); };')
    page = context.new_page()
    failures: List[str] = []
    page.on('pageerror', lambda exc: failures.append(str(exc)))
    try:
        page.goto(url + '/static/index.html')
        expected = {'Socket.IO heard Sent over Socket.IO', 'Primus heard Sent over Primus'}
        try:
            page.wait_for_function(
                '(expected) => expected.every((t) => window.__logged.includes(t)) && '
                'window.__logged.filter((t) => t.includes("created todo")).length === 2',
                arg=sorted(expected), timeout=15000)
        except sync_api.TimeoutError:
            pass  # the assertions below say what is missing
        logged = page.evaluate('window.__logged')
        assert expected <= set(logged), logged
        created = sorted(t for t in logged if 'created todo' in t)
        assert [t.rsplit(' ', 1)[0] for t in created] == ['Primus created todo',
                                                          'Socket.IO created todo'], logged
        assert not failures and not outside, (failures, outside)
    finally:
        context.close()
