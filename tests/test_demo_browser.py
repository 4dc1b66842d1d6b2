"""The demo page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

For each transport: two users of Acme see each other's adds, completes, deletes and typing live, a
Globex user sees none of it, and a reload shows what the database kept. Screenshots go to
tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Dict, Iterator, List

import pytest

# The demo package sits at the repository root, which a bare `pytest` does not put on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from demo import close_app, create_app  # noqa: E402

sync_api = pytest.importorskip('playwright.sync_api')
expect = sync_api.expect

HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(HERE, 'artifacts')
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']
#: How long a change may take to show up in another tab (ms); it usually takes a few.
LIVE = 5000


@pytest.fixture(scope='module')
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f'{CHROMIUM} is missing: run scripts/test (it installs Debian\'s chromium)')
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def demo(tmp_path, live_server):
    """The demo app on a fresh database, served on a free port."""
    app = create_app({'TESTING': True, 'SECRET_KEY': 'browser-test',
                      'DEMO_DATABASE_URL': f"sqlite:///{tmp_path / 'todos.db'}"})
    yield live_server(app)
    close_app(app)


class Tab:
    """One signed-in browser context (its own cookies) with the demo page open."""

    def __init__(self, browser: Any, base_url: str, username: str, transport: str) -> None:
        self.username = username
        self.context = browser.new_context(viewport={'width': 900, 'height': 640})
        # Offline: every request that does not go to the demo itself fails, so a page that
        # needed the internet (a CDN) could not go live.
        self.blocked: List[str] = []
        self.context.route('**/*', self._local_only(base_url))
        self.errors: List[str] = []
        self.page = self.context.new_page()
        self.page.on('pageerror', lambda exc: self.errors.append(f'{username}: {exc}'))
        self.page.on('console', lambda msg: msg.type == 'error' and self.errors.append(
            f'{username} console: {msg.text}'))
        self.page.goto(f'{base_url}/?transport={transport}')
        self.page.get_by_test_id(f'signin-{username}').click()
        self.wait_live()

    def _local_only(self, base_url: str) -> Any:
        def route(request_route: Any) -> None:
            url = request_route.request.url
            if url.startswith(base_url) or url.startswith(base_url.replace('http', 'ws', 1)):
                request_route.continue_()
            else:
                self.blocked.append(url)
                request_route.abort()
        return route

    def wait_live(self) -> None:
        expect(self.page.get_by_test_id('status'), f'{self.username} never went live').to_have_text(
            'live', timeout=LIVE)

    def add(self, text: str) -> None:
        self.page.get_by_label('New todo').fill(text)
        self.page.get_by_test_id('add-todo').click()

    def todo(self, text: str) -> Any:
        return self.page.get_by_test_id('todo').filter(has_text=text)

    def texts(self) -> Any:
        return self.page.get_by_test_id('todo-text')

    def event_texts(self) -> List[Dict[str, Any]]:
        return self.page.evaluate('window.demo.events.map(e => [e.event, e.text || null])')

    def screenshot(self, name: str) -> None:
        os.makedirs(ARTIFACTS, exist_ok=True)
        self.page.screenshot(path=os.path.join(ARTIFACTS, name))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tabs(browser, demo):
    opened: List[Tab] = []

    def open_tab(username: str, transport: str) -> Tab:
        tab = Tab(browser, demo.url, username, transport)
        opened.append(tab)
        return tab
    yield open_tab
    errors = [e for tab in opened for e in tab.errors]
    outside = [url for tab in opened for url in tab.blocked]
    for tab in opened:
        tab.close()
    assert not errors, f'errors in the pages: {errors}'
    assert not outside, f'the pages asked for something outside the demo: {outside}'


@pytest.mark.parametrize('transport', ['primus', 'socketio'])
def test_same_company_live_other_company_nothing_reload_keeps(tabs, transport):
    alice = tabs('alice', transport)
    bob = tabs('bob', transport)
    carol = tabs('carol', transport)
    expect(alice.page.get_by_test_id('news')).to_have_text(
        'Welcome, Alice! Acme has 0 open todos.', timeout=LIVE)
    loaded = 'window.Primus' if transport == 'primus' else 'window.io && !window.Primus'
    assert alice.page.evaluate(loaded), f'the {transport} client is not what the page loaded'

    # Adds travel both ways between Acme's users.
    alice.add('Buy milk')
    expect(bob.todo('Buy milk'), 'bob did not get alice\'s todo').to_have_count(1, timeout=LIVE)
    # the welcome line counts what the list shows, not what there was when it arrived
    expect(bob.page.get_by_test_id('news')).to_have_text('Welcome, Bob! Acme has 1 open todo.')
    bob.add('Walk the dog')
    expect(alice.todo('Walk the dog'), 'alice did not get bob\'s todo').to_have_count(1, timeout=LIVE)
    expect(alice.todo('Walk the dog').locator('.author')).to_have_text('Bob')  # a name, not 'bob'
    expect(alice.page.get_by_test_id('news')).to_have_text(
        'Welcome, Alice! Acme has 2 open todos.')

    # Someone is typing: a custom event, for the rest of the company only.
    bob.page.get_by_label('New todo').fill('Call')
    expect(alice.page.get_by_test_id('typing')).to_have_text('Bob is typing…', timeout=LIVE)
    alice.screenshot(f'demo-{transport}-alice-typing.png')

    # Completes (patch) and deletes (remove).
    bob.todo('Buy milk').get_by_test_id('todo-toggle').check()
    expect(alice.todo('Buy milk').get_by_test_id('todo-toggle'),
           'alice did not see bob complete the todo').to_be_checked(timeout=LIVE)
    expect(alice.todo('Buy milk')).to_have_class(re.compile(r'\bdone\b'))
    alice.screenshot(f'demo-{transport}-alice.png')
    alice.todo('Walk the dog').get_by_role('button', name='Delete “Walk the dog”').click()
    expect(bob.todo('Walk the dog'), 'bob still sees the deleted todo').to_have_count(0, timeout=LIVE)
    expect(bob.page.get_by_test_id('counts')).to_have_text('0 open · 1 done')

    # Carol's own todo reaches her after every Acme event would have (one ordered stream per
    # connection), so once she sees it, anything of Acme's would already be on her page.
    carol.add('Globex plan')
    expect(carol.texts()).to_have_text(['Globex plan'], timeout=LIVE)
    carol.page.wait_for_function(
        "window.demo.events.some(e => e.event === 'todos created' && e.text === 'Globex plan')",
        timeout=LIVE)
    assert carol.event_texts() == [['news', None], ['todos created', 'Globex plan']]
    expect(carol.page.get_by_test_id('typing')).to_have_text('')
    expect(alice.todo('Globex plan')).to_have_count(0)
    expect(bob.todo('Globex plan')).to_have_count(0)

    carol.screenshot(f'demo-{transport}-carol.png')

    # The database kept it: a reload (server-rendered, then re-synced over the socket) shows it.
    alice.page.reload()
    alice.wait_live()
    expect(alice.texts()).to_have_text(['Buy milk'])
    expect(alice.todo('Buy milk').get_by_test_id('todo-toggle')).to_be_checked()
    expect(alice.page.get_by_test_id('news')).to_have_text(
        'Welcome, Alice! Acme has 0 open todos.', timeout=LIVE)


def test_primus_and_socketio_tabs_share_events(tabs):
    alice = tabs('alice', 'primus')
    bob = tabs('bob', 'socketio')
    alice.add('From Primus')
    expect(bob.todo('From Primus'), 'Primus -> Socket.IO').to_have_count(1, timeout=LIVE)
    bob.todo('From Primus').get_by_test_id('todo-toggle').check()
    expect(alice.todo('From Primus').get_by_test_id('todo-toggle'),
           'Socket.IO -> Primus').to_be_checked(timeout=LIVE)


def test_sign_in_page_and_sign_out(browser, demo):
    context = browser.new_context(viewport={'width': 900, 'height': 640})
    try:
        page = context.new_page()
        page.goto(demo.url + '/')
        expect(page.get_by_role('heading', name='Sign in')).to_be_visible()
        expect(page.get_by_role('button', name=re.compile('Carol'))).to_be_visible()
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, 'demo-sign-in.png'))
        page.get_by_test_id('signin-dave').click()
        expect(page.get_by_test_id('whoami')).to_contain_text('Dave · Globex')
        expect(page.get_by_test_id('status')).to_have_text('live', timeout=LIVE)
        page.get_by_test_id('signout').click()
        expect(page.get_by_role('heading', name='Sign in')).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize('transport', ['primus', 'socketio'])
def test_typed_sign_in_wrong_password_then_right_one(browser, demo, transport):
    # Through the authentication service (local strategy): a wrong password is said on the card;
    # the right one signs in, and the page's socket is signed in with the access token (its
    # calls and events are the user's company's).
    context = browser.new_context(viewport={'width': 900, 'height': 640})
    try:
        page = context.new_page()
        page.goto(f'{demo.url}/?transport={transport}')
        expect(page.get_by_text('carol / carol-demo')).to_be_visible()
        page.get_by_test_id('signin-username').fill('carol')
        page.get_by_test_id('signin-password').fill('alice-demo')
        page.get_by_test_id('signin-submit').click()
        expect(page.get_by_test_id('signin-error')).to_have_text('Invalid login')
        expect(page.get_by_role('heading', name='Sign in')).to_be_visible()
        page.get_by_test_id('signin-username').fill('carol')
        page.get_by_test_id('signin-password').fill('carol-demo')
        page.get_by_test_id('signin-submit').click()
        expect(page.get_by_test_id('whoami')).to_contain_text('Carol · Globex')
        expect(page.get_by_test_id('status')).to_have_text('live', timeout=LIVE)
        expect(page.get_by_test_id('news')).to_contain_text('Welcome, Carol!', timeout=LIVE)
        page.get_by_label('New todo').fill('Signed in with a token')
        page.get_by_test_id('add-todo').click()
        expect(page.get_by_test_id('todo').filter(has_text='Signed in with a token')
               .locator('.author')).to_have_text('Carol', timeout=LIVE)  # the author, by name
        # the page's own client calls the authentication service like any other service
        call = ("new Promise((resolve) => window.demo.primus.send('authentication::create', "
                "{strategy: 'local', username: 'carol', password: 'carol-demo'}, {}, "
                "(error, result) => resolve([error, result && result.user.username, "
                "result && typeof result.accessToken])))" if transport == 'primus' else
                "new Promise((resolve) => window.demo.socket.emit('authentication::create', "
                "{strategy: 'local', username: 'carol', password: 'carol-demo'}, {}, "
                "(error, result) => resolve([error, result && result.user.username, "
                "result && typeof result.accessToken])))")
        assert page.evaluate(call) == [None, 'carol', 'string']
    finally:
        context.close()



def test_a_client_script_that_cannot_load_is_said_and_the_form_stays_put(browser, demo):
    context = browser.new_context()
    try:
        context.route('**/socket.io-client.js', lambda route: route.abort())
        page = context.new_page()
        page.goto(f'{demo.url}/?transport=socketio')
        page.get_by_test_id('signin-alice').click()
        expect(page.get_by_test_id('error')).to_contain_text(
            'socket.io-client script could not be loaded', timeout=LIVE)
        expect(page.get_by_test_id('status')).to_have_text('offline', timeout=LIVE)
        page.get_by_label('New todo').fill('lost?')
        # The form cancels its own submission (else the browser would send it as a GET to the
        # page and the todo would be lost): dispatchEvent returns false when it was cancelled.
        submitted = page.evaluate("document.getElementById('add').dispatchEvent("
                                  "new Event('submit', {cancelable: true}))")
        assert submitted is False, 'the add form would submit to the server as a plain GET'
        assert page.get_by_label('New todo').input_value() == 'lost?'
    finally:
        context.close()


def test_clear_completed_reaches_the_other_tab(tabs):
    alice = tabs('alice', 'socketio')
    bob = tabs('bob', 'primus')
    alice.add('Old news')
    alice.add('Still to do')
    expect(bob.todo('Old news'), 'bob did not get the todo').to_have_count(1, timeout=LIVE)
    alice.todo('Old news').get_by_test_id('todo-toggle').check()
    expect(bob.todo('Old news').get_by_test_id('todo-toggle'),
           'bob did not see it done').to_be_checked(timeout=LIVE)
    bob.page.get_by_test_id('clear-completed').click()
    for tab in (alice, bob):
        expect(tab.todo('Old news'), f'{tab.username} still shows the cleared todo').to_have_count(
            0, timeout=LIVE)
        expect(tab.todo('Still to do')).to_have_count(1)


def test_an_empty_todo_says_why_it_was_not_added(tabs):
    alice = tabs('alice', 'primus')
    for text in ('', '   '):
        alice.add(text)
        expect(alice.page.get_by_test_id('error')).to_have_text(
            'A todo needs some text: an empty one is not added.')
    alice.add('Real work')  # the same form still adds a todo with text
    expect(alice.texts()).to_have_text(['Real work'], timeout=LIVE)
    assert [e for e in alice.event_texts() if e[0] == 'todos created'] == [
        ['todos created', 'Real work']]

