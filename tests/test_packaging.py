"""The package as a user installs it: the wheel built from this checkout, in a clean virtualenv."""
import glob
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMOKE = r"""
import flask_feathers
from flask import Flask
from flask_feathers import Feathers, MemoryService, primus, rest
app = Flask('smoke')
api = Feathers(app)
api.configure(rest())
api.configure(primus({'transformer': 'websockets'}))
api.use('todos', MemoryService(paginate=None))
client = app.test_client()
created = client.post('/todos', json={'text': 'from the wheel'})
assert created.status_code == 201, created.status_code
assert client.get('/todos').get_json() == [{'text': 'from the wheel', 'id': 1}], \
    client.get('/todos').get_json()
library = client.get('/primus/primus.js')
assert library.status_code == 200 and b'Primus' in library.data, library.status_code
print('ok', flask_feathers.__version__)
"""


def run(cmd, **kwargs):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f'{" ".join(map(str, cmd))} failed:\n{done.stdout[-3000:]}' \
                                 f'\n{done.stderr[-3000:]}'
    return done.stdout


def test_the_wheel_installs_in_a_clean_virtualenv_and_serves(tmp_path):
    dist = tmp_path / 'dist'
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
         '-w', str(dist), ROOT])
    (wheel,) = glob.glob(str(dist / 'flask_feathers-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    assert 'flask_feathers/py.typed' in names and 'flask_feathers/static/primus.js' in names
    assert any(name.endswith('/LICENSE') for name in names), names
    assert not any(name.startswith(('tests/', 'demo/', 'bench/')) for name in names)
    import flask_feathers
    assert os.path.basename(wheel).startswith(f'flask_feathers-{flask_feathers.__version__}-')

    venv = tmp_path / 'venv'
    run([sys.executable, '-m', 'venv', str(venv)])
    python = str(venv / 'bin' / 'python')
    run([python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check', wheel])
    out = run([python, '-c', SMOKE], cwd=str(tmp_path))  # not the checkout: the installed copy
    assert out.strip() == f'ok {flask_feathers.__version__}'
