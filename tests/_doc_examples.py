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


def run_python_blocks(path: str, workdir: str, keep_open: bool = False) -> Dict[str, Any]:
    """Run the page's Python blocks (see the module docstring) in ``workdir``; returns the last
    namespace. Every Feathers extension an example made is closed afterwards, unless
    ``keep_open`` (then the caller closes the returned namespace's ``api``)."""
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
        for seen in ([] if keep_open else namespaces):
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
    logged = browser_console(
        browser, url, '/static/index.html',
        '() => ["Socket.IO heard Sent over Socket.IO", "Primus heard Sent over Primus"]'
        '.every((t) => window.__logged.includes(t)) && '
        'window.__logged.filter((t) => t.includes("created todo")).length === 2')
    assert {'Socket.IO heard Sent over Socket.IO', 'Primus heard Sent over Primus'} <= set(logged)
    created = sorted(t for t in logged if 'created todo' in t)
    assert [t.rsplit(' ', 1)[0] for t in created] == ['Primus created todo',
                                                      'Socket.IO created todo'], logged


def browser_console(browser: Any, url: str, page_path: str, ready: str) -> List[str]:
    """Open ``url + page_path`` in a fresh browser context and return what the page logged with
    ``console.log`` once the JavaScript expression ``ready`` holds (or after 15 s). Requests
    outside ``url`` fail, except socket.io.min.js from the socket.io CDN, which is served from
    the npm copy the tests install; a page error or an outside request fails the check."""
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
                            'console.log = (...a) => { window.__logged.push(a.map((v) =>'
                            ' typeof v === "string" ? v : JSON.stringify(v)).join(" "));'
                            ' log(...a); };')
    page = context.new_page()
    failures: List[str] = []
    page.on('pageerror', lambda exc: failures.append(str(exc)))
    try:
        page.goto(url + page_path)
        try:
            page.wait_for_function(ready, timeout=15000)
        except sync_api.TimeoutError:
            pass  # the caller's assertions say what is missing
        logged: List[str] = page.evaluate('window.__logged')
        assert not failures and not outside, (failures, outside, logged)
        return logged
    finally:
        context.close()


def check_html_page(path: str, live_server: Any, browser: Any, tmp_path: Any,
                    expected: List[str]) -> List[str]:
    """Run the page's Python examples (they make ``app``), save its one ``html`` block as
    ``static/example.html`` of that app, serve it and open it in the browser: every line of
    ``expected`` must be logged. Returns the log."""
    namespace = run_python_blocks(path, str(tmp_path), keep_open=True)
    try:
        pages = [b for b in code_blocks(path) if b.language == 'html']
        assert len(pages) == 1, f'{path}: expected one html block'
        static = namespace['app'].static_folder
        os.makedirs(static, exist_ok=True)
        with open(os.path.join(static, 'example.html'), 'w', encoding='utf-8') as fh:
            fh.write(pages[0].code)
        server = live_server(namespace['app'])
        logged = browser_console(browser, server.url, '/static/example.html',
                                 f'() => {json.dumps(expected)}.every((t) => '
                                 f'window.__logged.includes(t))')
        assert set(expected) <= set(logged), logged
        return logged
    finally:
        for state in namespace['api']._states:
            state.close()


class _Echo:
    """What the docs' JavaScript examples call: every method answers, whatever the id and the
    order the calls arrive in (each socket call runs in a thread of its own)."""

    def find(self, params: Dict[str, Any]) -> Any:
        return [params['query']]

    def get(self, id: Any, params: Dict[str, Any]) -> Any:
        return {'id': id}

    def create(self, data: Any, params: Dict[str, Any]) -> Any:
        return dict(data, id=1)

    def update(self, id: Any, data: Any, params: Dict[str, Any]) -> Any:
        return dict(data, id=id)

    def patch(self, id: Any, data: Any, params: Dict[str, Any]) -> Any:
        return dict(data, id=id)

    def remove(self, id: Any, params: Dict[str, Any]) -> Any:
        return {'id': id}

    def approve(self, data: Any, params: Dict[str, Any]) -> Any:
        return dict(data, approved=True)


def echo_app() -> Any:
    """A REST + Socket.IO app with ``todos`` as :class:`_Echo` (custom method ``approve``)."""
    from flask import Flask

    from flask_feathers import Feathers, rest, socketio

    app = Flask('docs_javascript')
    api = Feathers(app)
    api.configure(rest())
    api.configure(socketio())
    api.use('todos', _Echo(), methods=['find', 'get', 'create', 'update', 'patch', 'remove',
                                       'approve'])
    return app, api


#: Runs before a page's JavaScript example in Node: ``io(...)`` connects to the test server
#: whatever URL the example names, every acknowledgement is counted and its error kept, and the
#: names the examples take for granted (``socket``, ``feathers``, ``socketioClient``, ``token``)
#: exist.
_JS_PRELUDE = """
const realIo = require('socket.io-client').io;
const { feathers } = require('@feathersjs/feathers');
const socketioClient = require('@feathersjs/socketio-client');
const token = 'docs';
let pending = 0, answered = 0;
const errors = [];
const io = (url, options) => {
  const s = realIo(URL, Object.assign({}, options, { transports: ['websocket'] }));
  const emit = s.emit.bind(s);
  s.emit = (...args) => {
    const ack = args[args.length - 1];
    if (typeof ack === 'function') {
      pending++;
      args[args.length - 1] = (...answer) => {
        pending--; answered++;
        if (answer[0]) errors.push(answer[0]);
        ack(...answer);
      };
    }
    return emit(...args);
  };
  return s;
};
const finish = () => {
  if (pending > 0) return setTimeout(finish, 20);
  out({ answered, errors });
  done();
};
setTimeout(() => fail('not every call was answered: ' + pending + ' waiting'), 15000);
"""


def check_javascript_blocks(path: str, live_server: Any, node: Any) -> int:
    """Run each ``javascript`` block of the page in Node against :func:`echo_app`; every call it
    makes must be answered without an error. Returns how many blocks ran."""
    ran = 0
    for block in code_blocks(path):
        if block.language != 'javascript':
            continue
        app, api = echo_app()
        server = live_server(app)
        try:
            declares_socket = re.search(r'\b(const|let|var)\s+socket\b', block.code)
            script = (f'const URL = {json.dumps(server.url)};\n' + _JS_PRELUDE +
                      ('' if declares_socket else 'const socket = io();\n') +
                      '(async () => {\n' + block.code +
                      '\n})().then(finish, (e) => fail(String(e)));\n')
            out = node(script)
        finally:
            for state in api._states:
                state.close()
        where = f'{os.path.relpath(path, ROOT)}:{block.line}'
        assert out and out[-1]['errors'] == [], (where, out)
        assert out[-1]['answered'] > 0, (where, out)  # (and none left waiting: see finish)
        ran += 1
    return ran
