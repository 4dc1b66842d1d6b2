"""The project's own browser client, flask_feathers/static/primus.js, in headless Chromium.

Driven by Playwright against the test-only Primus server in ``_primus_harness``
(the real codec on simple-websocket under Werkzeug).
"""
import json
import re
import threading

import pytest

from _primus_harness import PRIMUS_JS, PrimusTestServer
from flask_feathers.providers import _primus_protocol as pp

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Most tests keep a heartbeat slow enough that a loaded CI machine never
# misses a beat; the heartbeat tests ask for a short one (fast to observe, and
# still 300 ms of slack per beat) with @short_heartbeat.
PING_INTERVAL = 5000
SHORT_PING_INTERVAL = 600
short_heartbeat = pytest.mark.parametrize("server", [SHORT_PING_INTERVAL], indirect=True,
                                          ids=["ping600"])


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(request):
    server = PrimusTestServer(ping_interval=getattr(request, "param", PING_INTERVAL)).start()
    yield server
    server.stop()


@pytest.fixture
def page_errors():
    """Uncaught errors of the page; a test that expects some empties the list."""
    return []


def _open_page(browser, url, page_errors):
    """A page of its own browser context at ``url``; fails the test on uncaught page errors."""
    context = browser.new_context()
    page = context.new_page()
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    page.goto(url + "/")
    yield page
    context.close()
    assert not page_errors, f"uncaught errors in the page: {page_errors}"


@pytest.fixture
def page(browser, server, page_errors):
    yield from _open_page(browser, server.url, page_errors)


def wait_js(page, expression, what, timeout=10_000, arg=None):
    """Wait until ``expression`` (a JS function body's return value) is truthy."""
    try:
        return page.wait_for_function(f"(arg) => {{ return {expression}; }}", arg=arg,
                                      timeout=timeout, polling=20).json_value()
    except sync_api.TimeoutError:
        log = page.evaluate("window.log")
        raise AssertionError(f"timed out after {timeout} ms waiting for {what}; page log: {log}") from None


def events(page, who=None):
    return [e["event"] for e in page.evaluate("window.log") if who is None or e["who"] == who]


# -- the seed's snippet -------------------------------------------------------

SEED_SNIPPET = """
var primus = new Primus(url);
primus.on('todos created', function(todo) { window.created.push(todo); });
primus.send('todos::create', { description: 'Do something' }, {}, function() {
  primus.send('todos::find', {}, function(error, todos) { window.found = [error, todos]; });
});
"""


def test_seed_snippet_runs_unchanged(page, server):
    page.evaluate("(url) => { window.created = []; window.url = url; }", server.url + "/")
    page.add_script_tag(content=SEED_SNIPPET)
    found = wait_js(page, "window.found", "the find ack")
    assert found == [None, [{"description": "Do something", "id": 0}]]
    created = wait_js(page, "window.created.length && window.created", "the todos created event")
    assert created == [{"description": "Do something", "id": 0}]

    conn = server.wait_for_connection()
    creates = [f for f in conn.of_kind(pp.Event) if f.name == "todos::create"]
    assert creates == [pp.Event("todos::create", ({"description": "Do something"}, {}), 1)]
    finds = [f for f in conn.of_kind(pp.Event) if f.name == "todos::find"]
    assert finds == [pp.Event("todos::find", ({},), 2)]


def test_url_path_is_the_compiled_pathname_and_query_is_kept(page, server):
    page.evaluate("(url) => { window.p = track(new Primus(url)); }",
                  server.url + "/some/other/path?token=abc&x=1")
    wait_js(page, "seen('open')", "open")
    conn = server.wait_for_connection()
    assert conn.path == "/primus"
    assert conn.args["token"] == "abc" and conn.args["x"] == "1"
    assert re.fullmatch(r"[0-9a-z-]+", conn.args["_primuscb"])


def test_cache_buster_differs_per_connection(page):
    uris = page.evaluate("""() => {
        var p = new Primus('http://example.com:81/x?a=1', {manual: true});
        return [p.uri(), p.uri(), new Primus('https://example.com/', {manual: true}).uri()];
    }""")
    assert uris[0].startswith("ws://example.com:81/primus?a=1&_primuscb=")
    assert uris[0] != uris[1]
    assert uris[2].startswith("wss://example.com/primus?_primuscb=")


def test_custom_pathname_token(browser):
    server = PrimusTestServer(pathname="/rt/live").start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url + "/")
        page.evaluate("(url) => { window.p = track(new Primus(url)); }", server.url)
        wait_js(page, "seen('open')", "open")
        assert server.wait_for_connection().path == "/rt/live"
        context.close()
    finally:
        server.stop()


# -- emitter events and acks --------------------------------------------------

def test_server_events_reach_listeners_with_all_args(page, server):
    page.evaluate("""(url) => {
        window.got = [];
        window.p = track(new Primus(url));
        p.on('news', function (a, b) { got.push(['news', a, b]); });
        p.once('once', function (a) { got.push(['once', a]); });
        var dropped = function () { got.push(['dropped']); };
        p.on('news', dropped);
        p.off('news', dropped);
        p.on('data', function (d) { if (d && d.type === 0) got.push(['data', d.data[0]]); });
    }""", server.url)
    wait_js(page, "seen('open')", "open")
    conn = server.wait_for_connection()
    conn.send_event("news", {"n": 1}, [2, 3])
    conn.send_event("once", 1)
    conn.send_event("once", 2)
    conn.send_event("open", "reserved names are not dispatched")
    conn.send_event("news", "last", None)
    got = wait_js(page, "got.filter(g => g[0] === 'news').length === 2 && got", "two news events")
    assert got == [
        ["data", "news"], ["news", {"n": 1}, [2, 3]],
        ["data", "once"], ["once", 1],
        ["data", "once"],
        ["data", "open"],
        ["data", "news"], ["news", "last", None],
    ]
    assert events(page).count("open") == 1


def test_server_event_with_ack_id_is_answered_once(page, server):
    page.evaluate("""(url) => {
        window.p = track(new Primus(url));
        p.on('question', function (q, done) { done(null, q * 2); done('twice'); });
        p.on('sync', function () { p.send('echo', 'sync'); });
    }""", server.url)
    wait_js(page, "seen('open')", "open")
    conn = server.wait_for_connection()
    conn.send_event("question", 21, ack_id=7)
    conn.send_event("unheard", ack_id=8)  # no listener: no ack
    conn.send_event("sync")  # answered after the two above were handled
    server.wait_for(lambda: [f for f in conn.of_kind(pp.Event) if f.name == "echo"], what="echo")
    assert conn.of_kind(pp.Ack) == [pp.Ack(7, (None, 42))]


def test_acks_resolved_by_id_in_any_order(page, server):
    page.evaluate("""(url) => {
        window.acks = [];
        window.p = track(new Primus(url));
        p.send('slow', function () { acks.push(['slow'].concat([].slice.call(arguments))); });
        p.send('fast', 'x', function () { acks.push(['fast'].concat([].slice.call(arguments))); });
        p.send('nothing', 'no ack wanted');
    }""", server.url)
    conn = server.wait_for_connection()
    server.wait_for(lambda: len(conn.of_kind(pp.Event)) == 3, what="three events")
    slow, fast, nothing = conn.of_kind(pp.Event)
    assert (slow.name, slow.ack_id, fast.name, fast.ack_id, nothing.ack_id) == ("slow", 1, "fast", 2, None)
    conn.send(pp.encode_ack(2, ["f"]))
    conn.send(pp.encode_ack(99, ["unknown id, ignored"]))
    conn.send(pp.encode_ack(1, [None, {"ok": True}]))
    conn.send(pp.encode_ack(1, ["a second ack for one id is ignored"]))
    page.evaluate("window.synced = false; p.on('sync', function () { synced = true; })")
    conn.send_event("sync")
    wait_js(page, "window.synced", "the sync event")
    assert page.evaluate("acks") == [["fast", "f"], ["slow", None, {"ok": True}]]


def test_write_sends_plain_data_and_data_event_receives_it(page, server):
    page.evaluate("""(url) => {
        window.data = [];
        window.p = track(new Primus(url));
        p.on('data', function (d) { data.push(d); });
        p.write({hello: 'world'});
        p.write('text');
        p.write([1, 2]);
    }""", server.url)
    conn = server.wait_for_connection()
    server.wait_for(lambda: len(conn.of_kind(pp.Data)) == 3, what="three data frames")
    assert conn.of_kind(pp.Data) == [pp.Data({"hello": "world"}), pp.Data("text"), pp.Data([1, 2])]
    conn.send(pp.encode_data({"from": "server"}))
    conn.send("not json")
    conn.send(pp.encode_data("primus::unknown::x"))
    wait_js(page, "data.length >= 2", "two data events")
    assert page.evaluate("data") == [{"from": "server"}, "primus::unknown::x"]


def test_id(page, server):
    page.evaluate("""(url) => {
        window.p = track(new Primus(url));
        p.id(function (id) { window.gotId = id; });
    }""", server.url)
    conn = server.wait_for_connection()
    assert wait_js(page, "window.gotId", "the id") == conn.id
    assert conn.of_kind(pp.Id) == [pp.Id("")]


# -- heartbeat ----------------------------------------------------------------

def test_ping_answered_with_pong(page, server):
    server.pinging = False
    page.evaluate("(url) => { window.p = track(new Primus(url)); }", server.url)
    wait_js(page, "seen('open')", "open")
    conn = server.wait_for_connection()
    conn.send(pp.encode_ping(1795529598969))
    server.wait_for(lambda: conn.of_kind(pp.Pong), what="the pong")
    assert conn.of_kind(pp.Pong) == [pp.Pong("1795529598969")]


@short_heartbeat
def test_regular_pings_keep_the_connection(page, server):
    page.evaluate("(url) => { window.p = track(new Primus(url)); }", server.url)
    conn = server.wait_for_connection()
    # Five pongs take over four intervals: far past the 1.5-interval limit.
    server.wait_for(lambda: len(conn.of_kind(pp.Pong)) >= 5, what="five pongs")
    assert events(page) == ["online", "open"]
    assert len(server.connections) == 1 and not conn.closed.is_set()


@short_heartbeat
def test_dead_server_noticed_and_reconnected(page, server):
    page.evaluate("""(url) => {
        window.p = track(new Primus(url, {reconnect: {min: 50, max: 200}}));
    }""", server.url)
    first = server.wait_for_connection()
    server.wait_for(lambda: first.of_kind(pp.Pong), what="a first pong")
    first.pinging = False  # the server hangs: socket open, no more pings
    second = server.wait_for_connection(2)
    # The client dropped the silent connection itself.
    server.wait_for(lambda: first.closed.is_set(), what="the silent connection closed by the client")
    assert not first.closed_by_server
    wait_js(page, "seen('reconnected')", "reconnected")
    assert events(page) == ["online", "open", "offline", "close", "reconnect scheduled", "reconnect",
                            "reconnected", "online", "open"]
    server.wait_for(lambda: second.of_kind(pp.Pong), what="pongs on the new connection")


def test_reconnect_after_server_restart_flushes_queued_sends(page, server):
    page.evaluate("""(url) => {
        window.acks = [];
        window.p = track(new Primus(url, {reconnect: {min: 50, max: 300, retries: 100}}));
    }""", server.url)
    wait_js(page, "seen('open')", "open")
    server.stop()
    wait_js(page, "seen('close') && seen('reconnect scheduled', 2)", "failed reconnect attempts")
    page.evaluate("""() => {
        p.send('echo', 'queued while down', function (v) { acks.push(v); });
        p.write('queued data');
    }""")
    server.start()  # the same port
    wait_js(page, "seen('reconnected')", "reconnected")
    conn = server.wait_for_connection(2)
    assert wait_js(page, "acks.length && acks", "the ack of the queued send") == ["queued while down"]
    server.wait_for(lambda: conn.of_kind(pp.Data), what="the queued write")
    kinds = [type(f).__name__ for f in conn.frames if not isinstance(f, pp.Pong)]
    assert kinds[:2] == ["Event", "Data"]
    # 'offline' first would mean the heartbeat noticed before the close did: fine too.
    log = [e for e in events(page) if e != "offline"]
    assert log[:4] == ["online", "open", "close", "reconnect scheduled"]
    assert "end" not in log and log[-1] == "open"


def test_no_reconnect_after_server_close(page, server):
    page.evaluate("""(url) => {
        window.p = track(new Primus(url, {reconnect: {min: 10, max: 20}}));
    }""", server.url)
    conn = server.wait_for_connection()
    wait_js(page, "seen('open')", "open")
    conn.close(deliberate=True)
    wait_js(page, "seen('end')", "end")
    assert events(page) == ["online", "open", "close", "end"]
    # Nothing is scheduled: no reconnect can follow.
    assert page.evaluate("Object.keys(p._timers).length === 0 && p.readyState === Primus.CLOSED")
    assert page.evaluate("p.write('dropped')") is False


def test_abrupt_server_close_does_reconnect(page, server):
    page.evaluate("""(url) => {
        window.p = track(new Primus(url, {reconnect: {min: 10, max: 50}}));
    }""", server.url)
    conn = server.wait_for_connection()
    wait_js(page, "seen('open')", "open")
    conn.close(deliberate=False)
    wait_js(page, "seen('reconnected')", "reconnected")
    # The browser may see the open before the server thread has registered it.
    server.wait_for_connection(2)
    assert len(server.connections) == 2


def test_end_is_deliberate(page, server):
    page.evaluate("""(url) => {
        window.p = track(new Primus(url));
        p.on('open', function () { p.end({bye: true}); });
    }""", server.url)
    conn = server.wait_for_connection()
    server.wait_for(lambda: conn.closed.is_set(), what="the client closing")
    assert conn.of_kind(pp.Data) == [pp.Data({"bye": True})]
    wait_js(page, "seen('end')", "end")
    assert events(page) == ["online", "open", "close", "end"]
    assert page.evaluate("Object.keys(p._timers).length") == 0


def test_reconnect_gives_up_after_retries(page, server):
    port = server.port
    server.stop()
    page.evaluate("""(url) => {
        window.p = track(new Primus(url, {reconnect: {min: 10, max: 20, retries: 3}}));
    }""", f"http://127.0.0.1:{port}/")
    wait_js(page, "seen('end')", "end")
    log = events(page)
    assert log.count("reconnect scheduled") == 3 and log.count("reconnect") == 3
    assert log[-2:] == ["reconnect failed", "end"]
    assert "open" not in log and "close" not in log


# -- queueing before open -----------------------------------------------------

def test_sends_before_open_are_queued_and_flushed_in_order(page, server):
    page.evaluate("""(url) => {
        window.acks = [];
        window.p = track(new Primus(url));
        p.on('open', function () { p.send('echo', 'from open listener', function (v) { acks.push(v); }); });
        p.write('first');
        p.send('echo', 'second', function (v) { acks.push(v); });
        p.write('third');
        p.send('fourth');
        p.id(function (id) { window.gotId = id; });
        window.stateBeforeOpen = p.readyState;
    }""", server.url)
    assert page.evaluate("stateBeforeOpen") != page.evaluate("Primus.OPEN")
    wait_js(page, "acks.length === 2", "both acks")
    assert page.evaluate("acks") == ["second", "from open listener"]
    conn = server.wait_for_connection()
    sent = [f for f in conn.frames if not isinstance(f, pp.Pong)]
    assert sent == [pp.Data("first"), pp.Event("echo", ("second",), 1), pp.Data("third"),
                    pp.Event("fourth", (), None), pp.Id(""),
                    pp.Event("echo", ("from open listener",), 2)]
    assert wait_js(page, "window.gotId", "the id") == conn.id


def test_a_throwing_listener_does_not_break_the_client(page, server, page_errors):
    page.evaluate("""(url) => {
        window.got = [];
        window.p = track(new Primus(url));
        p.on('tick', function () { throw new Error('listener bug'); });
        p.on('tick', function (n) { got.push(n); });
    }""", server.url)
    wait_js(page, "seen('open')", "open")
    conn = server.wait_for_connection()
    conn.send_event("tick", 1)
    conn.send_event("tick", 2)
    wait_js(page, "got.length === 2", "both ticks")
    # The errors are rethrown on timers queued before this one.
    page.evaluate("() => new Promise(r => setTimeout(r, 0))")
    page.evaluate("1")
    assert len(page_errors) == 2 and all("listener bug" in e for e in page_errors), page_errors
    page_errors.clear()


# -- the file itself ----------------------------------------------------------

def test_primus_js_is_es5_and_has_the_tokens():
    text = PRIMUS_JS.read_text("utf-8")
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    for pattern in (r"\blet\s", r"\bconst\s", r"=>", "`", r"\bclass\s", r"\.\.\.", r"\basync\b", r"\bawait\b"):
        assert not re.search(pattern, code), f"not ES5: {pattern}"
    assert "'__PRIMUS_PATHNAME__'" in text and "'__PRIMUS_PING_INTERVAL__'" in text


def test_unreplaced_tokens_fall_back_to_primus_defaults(page):
    page.add_script_tag(content=PRIMUS_JS.read_text("utf-8").replace("root.Primus = Primus", "root.RawPrimus = Primus"))
    uri, ping_timeout = page.evaluate("""() => {
        var p = new RawPrimus('http://h/', {manual: true});
        return [p.uri(), p.options.pingTimeout];
    }""")
    assert uri.startswith("ws://h/primus?_primuscb=")
    assert ping_timeout == 45000
    assert json.loads(json.dumps(ping_timeout)) == 45000


# -- the harness itself -------------------------------------------------------

def test_npm_primus_client_agrees_with_the_harness(server):
    """The stand-in server speaks the protocol of the real npm primus 8 client
    (primus-emitter plugin): what these browser tests prove is worth something."""
    import shutil
    import subprocess
    js_dir = PRIMUS_JS.parent.parent.parent / "tests" / "js"
    if not shutil.which("node") or not (js_dir / "node_modules" / "primus").is_dir():
        pytest.skip("node or tests/js/node_modules missing (npm ci in tests/js)")
    proc = subprocess.Popen(["node", "primus_probe.js", server.url + "/ignored?token=t"], cwd=js_dir,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen = {}
    try:
        for line in proc.stdout:
            kind, value = json.loads(line)
            seen[kind] = value
            if kind == "nope":
                conn = server.connections[0]
                conn.send_event("question", 21, ack_id=5)
                conn.send(pp.encode_ping(1795529598969))
                server.wait_for(lambda: conn.of_kind(pp.Ack) and conn.of_kind(pp.Pong), what="ack and pong")
                proc.stdin.write("end\n")
                proc.stdin.flush()
    finally:
        proc.stdin.close()
        proc.wait(30)
        proc.stdout.close()
    assert seen["created"] == [None, {"description": "from node", "id": 0}]
    assert seen["found"] == [None, [{"description": "from node", "id": 0}]]
    assert seen["todos created"] == {"description": "from node", "id": 0}
    assert seen["nope"]["name"] == "NotFound"
    assert "end" in seen
    conn = server.connections[0]
    assert conn.path == "/primus" and conn.args["token"] == "t" and conn.args["_primuscb"]
    # Nothing is sent on connect: the first frame is the first send.
    assert conn.frames[0] == pp.Event("todos::create", ({"description": "from node"}, {}), 1)
    assert seen["id"] == conn.id
    assert conn.of_kind(pp.Ack) == [pp.Ack(5, (None, 42))]
    assert conn.of_kind(pp.Pong) == [pp.Pong("1795529598969")]


# -- against the real provider ------------------------------------------------

class _Todos:
    def __init__(self):
        self.store = []

    def find(self, params):
        return list(self.store)

    def create(self, data, params):
        todo = dict(data, id=len(self.store))
        self.store.append(todo)
        return todo


@pytest.fixture
def real(live_server):
    """The real Primus provider (flask_feathers.providers.primus) with a todos service."""
    from flask import Flask

    from _primus_harness import PAGE
    from flask_feathers import Feathers, primus

    app = Flask("primus_js_real")
    api = Feathers(app)
    api.configure(primus({"transformer": "websockets", "pingInterval": PING_INTERVAL}))
    api.use("todos", _Todos())
    app.add_url_rule("/", "page", lambda: PAGE.format(pathname="/primus"))
    server = live_server(app)
    server.api = api
    server.sparks = []
    server.changed = threading.Condition()

    def on_connection(spark):
        with server.changed:
            server.sparks.append(spark)
            server.changed.notify_all()
    api.primus.on("connection", on_connection)
    return server


@pytest.fixture
def real_page(browser, real, page_errors):
    yield from _open_page(browser, real.url, page_errors)


def _spark(real, timeout=10):
    """The first connection the real provider accepted, once it exists."""
    with real.changed:
        if not real.changed.wait_for(lambda: real.sparks, timeout):
            raise AssertionError(f"no Primus connection after {timeout} s")
        return real.sparks[0]


def test_real_provider_seed_snippet(real_page, real):
    real_page.evaluate("(url) => { window.created = []; window.url = url; }", real.url + "/")
    real_page.add_script_tag(content=SEED_SNIPPET)
    found = wait_js(real_page, "window.found", "the find ack")
    assert found == [None, [{"description": "Do something", "id": 0}]]
    created = wait_js(real_page, "window.created.length && window.created", "the todos created event")
    assert created == [{"description": "Do something", "id": 0}]


def test_real_provider_events_and_acks_both_ways(real_page, real):
    real_page.evaluate("""(url) => {
        window.got = [];
        window.p = track(new Primus(url));
        p.on('question', function (q, done) { got.push(q); done(null, q * 2); });
        p.send('nothing::find', {}, function (error) { window.nope = error; });
    }""", real.url)
    wait_js(real_page, "seen('open')", "open")
    assert wait_js(real_page, "window.nope", "the NotFound ack")["name"] == "NotFound"
    answers = []
    answered = threading.Event()

    def on_answer(*args):
        answers.append(args)
        answered.set()
    spark = _spark(real)
    spark.send("question", 21, on_answer)
    wait_js(real_page, "got.length === 1", "the question")
    assert answered.wait(10), "the server never got the client's ack"
    assert answers == [(None, 42)]


def test_real_provider_spark_end_means_no_reconnect(real_page, real):
    real_page.evaluate("(url) => { window.p = track(new Primus(url, {reconnect: {min: 10, max: 20}})); }",
                       real.url)
    wait_js(real_page, "seen('open')", "open")
    spark = _spark(real)
    spark.end()
    wait_js(real_page, "seen('end')", "end")
    assert events(real_page) == ["online", "open", "close", "end"]
    assert real_page.evaluate("Object.keys(p._timers).length === 0")
