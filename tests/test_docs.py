"""The documentation site: it builds with warnings as errors, and its examples run as written."""
import json
import os
import subprocess
import sys

import pytest

from _doc_examples import (DOCS, ROOT, check_html_page, check_javascript_blocks,
                           check_quickstart, chromium, code_blocks, doc_pages, run_python_blocks)

PAGES_WITH_PYTHON = [os.path.basename(page) for page in doc_pages()
                     if any(b.language == 'python' for b in code_blocks(page))]


@pytest.fixture(scope='module')
def browser():
    with chromium() as browser:
        yield browser


def test_docs_build_with_warnings_as_errors(tmp_path):
    proc = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b',
                           'html', '-d', str(tmp_path / 'doctrees'), DOCS, str(tmp_path / 'html')],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    for page in doc_pages():
        name = os.path.splitext(os.path.basename(page))[0]
        assert (tmp_path / 'html' / f'{name}.html').exists(), name
    api = (tmp_path / 'html' / 'api.html').read_text(encoding='utf-8')
    # autodoc really read the docstrings
    assert 'init_app' in api and 'UnsupportedMediaType' in api and 'realtime_client' in api


def test_the_pages_have_python_examples():
    assert {'quickstart.rst', 'services.rst', 'hooks.rst', 'filters.rst',
            'testing.rst'} <= set(PAGES_WITH_PYTHON)


@pytest.mark.parametrize('page', PAGES_WITH_PYTHON)
def test_every_python_example_runs(page, tmp_path):
    run_python_blocks(os.path.join(DOCS, page), str(tmp_path))


def test_quickstart_page_runs_as_written(live_server, browser, tmp_path):
    check_quickstart(os.path.join(DOCS, 'quickstart.rst'), live_server, browser, tmp_path)


def test_every_configuration_key_is_documented():
    from flask_feathers.extension import DEFAULTS
    with open(os.path.join(DOCS, 'configuration.rst'), encoding='utf-8') as fh:
        text = fh.read()
    missing = [key for key in DEFAULTS if f'``{key}``' not in text]
    assert not missing, f'docs/configuration.rst does not document {missing}'


def test_docstrings_cite_the_projects_own_protocol_notes():
    cited = []
    for folder, _, files in os.walk(os.path.join(ROOT, 'flask_feathers')):
        for name in files:
            if name.endswith('.py'):
                with open(os.path.join(folder, name), encoding='utf-8') as fh:
                    if 'PROTOCOL.md' in fh.read():
                        cited.append(name)
    assert cited == [], f'these cite PROTOCOL.md, which is not in the repository: {cited}'


def test_the_quickstart_shows_what_api_run_prints():
    from flask_feathers.transport.serving import DEVELOPMENT_SERVER_LINE
    with open(os.path.join(DOCS, 'quickstart.rst'), encoding='utf-8') as fh:
        text = fh.read()
    assert '   ' + DEVELOPMENT_SERVER_LINE + '\n' in text


PAGES_WITH_JAVASCRIPT = [os.path.basename(page) for page in doc_pages()
                         if any(b.language == 'javascript' for b in code_blocks(page))]


@pytest.mark.parametrize('page', PAGES_WITH_JAVASCRIPT)
def test_javascript_examples_are_answered_without_errors(page, live_server, node):
    assert check_javascript_blocks(os.path.join(DOCS, page), live_server, node) > 0


def test_the_primus_page_runs_in_a_browser(live_server, browser, tmp_path):
    logged = check_html_page(os.path.join(DOCS, 'primus.rst'), live_server, browser, tmp_path,
                             ['Hello alice', 'Someone created Buy milk'])
    # the find after the create, over the same connection
    assert [{'text': 'Buy milk', 'id': 1}] in [json.loads(t) for t in logged if t.startswith('[')]


def test_the_protocol_notes_error_example_is_what_memoryservice_answers():
    from flask import Flask

    from flask_feathers import Feathers, MemoryService, rest
    (block,) = [b for b in code_blocks(os.path.join(DOCS, 'protocol.rst')) if b.language == 'json']
    app = Flask('protocol_error')
    api = Feathers(app)
    api.configure(rest())
    api.use('todos', MemoryService())
    answer = app.test_client().get('/todos/7')
    assert answer.status_code == 404 and answer.get_json() == json.loads(block.code)
