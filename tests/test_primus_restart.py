"""primus.js in headless Chromium reconnects by itself when the real server process restarts."""
import json
import os
import subprocess
import sys

import pytest

from support.waiting import free_port

playwright = pytest.importorskip('playwright.sync_api')

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'apps', 'restart_app.py')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def start(port):
    proc = subprocess.Popen([sys.executable, APP, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert json.loads(line) == {'ready': port, 'pid': proc.pid}, f'app did not start: {line!r}'
    return proc


def stop(proc):
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def test_reconnects_after_the_server_restarts_and_gets_events_again():
    port = free_port()
    proc = start(port)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f'http://127.0.0.1:{port}/')
                page.wait_for_function('window.events.includes("open")', timeout=10000)
                page.evaluate("primus.send('todos::create', {description: 'before'}, {}, function () {})")
                page.wait_for_function('window.created.includes("before")', timeout=10000)
                stop(proc)                       # the process dies: no primus::server::close
                page.wait_for_function('window.events.includes("reconnect")', timeout=10000)
                proc = start(port)               # same port, fresh process
                page.wait_for_function('window.events.includes("reconnected")', timeout=15000)
                page.evaluate("primus.send('todos::create', {description: 'after'}, {}, function () {})")
                page.wait_for_function('window.created.includes("after")', timeout=10000)
                events = page.evaluate('window.events')
                assert 'end' not in events, events
            finally:
                browser.close()
    finally:
        stop(proc)
