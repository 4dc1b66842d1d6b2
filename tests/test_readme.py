"""README.rst: its quickstart runs as written, and it renders (it is the wheel's long description).

The configuration reference lives in docs/configuration.rst (tests/test_docs.py checks it)."""
import io

import pytest

from _doc_examples import README, check_quickstart, chromium

#: The README is a front page, not the manual.
MAX_LINES = 250


@pytest.fixture(scope='module')
def browser():
    with chromium() as browser:
        yield browser


def test_quickstart_runs_as_written(live_server, browser, tmp_path):
    check_quickstart(README, live_server, browser, tmp_path)


def test_readme_is_a_short_front_page_linking_the_docs():
    with open(README, encoding='utf-8') as fh:
        text = fh.read()
    assert len(text.splitlines()) < MAX_LINES
    for command in ('scripts/demo', 'scripts/test', 'sphinx-build -W -b html docs'):
        assert command in text, command


def test_readme_renders_without_errors():
    # it is also the wheel's long description: a broken table there is a broken project page
    import docutils.core

    with open(README, encoding='utf-8') as fh:
        source = fh.read()
    problems = io.StringIO()
    docutils.core.publish_doctree(source, settings_overrides={
        'report_level': 2, 'halt_level': 5, 'warning_stream': problems})
    assert problems.getvalue() == '', problems.getvalue()[:2000]


def test_readme_quickstart_is_the_docs_quickstart():
    # one quickstart, shown in two places: they must not drift apart
    import os

    from _doc_examples import DOCS, code_blocks

    def examples(path):
        return [(b.language, b.code) for b in code_blocks(path)
                if b.language in ('console', 'html') or b.code.startswith('# app.py')]
    assert examples(README) == examples(os.path.join(DOCS, 'quickstart.rst'))
