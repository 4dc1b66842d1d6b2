"""Sphinx configuration of the flask_feathers documentation (built by tests/test_docs.py)."""
import os
import sys

sys.path.insert(0, os.path.abspath('..'))

import flask_feathers  # noqa: E402

project = 'flask_feathers'
copyright = '2026, the flask_feathers authors'
author = 'the flask_feathers authors'
release = flask_feathers.__version__
version = '.'.join(release.split('.')[:2])

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.intersphinx',
    'sphinx.ext.viewcode',
    'pallets_sphinx_themes',
]
# Only what the docs name: links out need the network, and the build must work offline.
intersphinx_mapping = {}
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_preserve_defaults = True
nitpicky = False
default_role = 'code'
highlight_language = 'python3'
exclude_patterns = ['_build']
templates_path = []

html_theme = 'flask'
html_title = f'flask_feathers Documentation ({version})'
html_show_sourcelink = False
html_context = {}
html_sidebars = {
    'index': ['project.html', 'localtoc.html', 'searchbox.html'],
    '**': ['localtoc.html', 'relations.html', 'searchbox.html'],
}
html_static_path = []
