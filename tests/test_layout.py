"""The package's shape: public names, and a core that imports no I/O library."""
import subprocess
import sys

import flask_feathers

CORE = ['errors', 'service', 'events', 'registry', 'connections', 'dispatch', 'fanout', 'hooks',
        'channels', 'encoding', 'fanout_redis', '_query', '_pagination', '_coercion', '_adapter',
        'memory', 'application', 'wrapped', 'router', 'config', 'backends', 'backends.pubsub',
        'backends.redis']
IO_LIBRARIES = ['flask', 'flask_socketio', 'simple_websocket', 'redis', 'socketio', 'engineio',
                'werkzeug', 'sqlalchemy']


def test_public_names_are_pinned():
    assert set(flask_feathers.__all__) == {'Feathers', 'WrappedService', 'errors', 'rest',
                                           'socketio', 'primus', 'MemoryService', 'SQLService',
                                           '__version__'}
    for name in flask_feathers.__all__:
        assert hasattr(flask_feathers, name), name


def test_core_modules_import_no_io_library():
    # Import the core modules without flask_feathers/__init__ (which wires up Flask).
    code = (
        'import importlib.util, sys, os, types\n'
        f'root = {flask_feathers.__path__[0]!r}\n'
        'pkg = types.ModuleType("flask_feathers"); pkg.__path__ = [root]\n'
        'sys.modules["flask_feathers"] = pkg\n'
        f'for m in {CORE!r}:\n'
        '    importlib.import_module("flask_feathers." + m)\n'
        f'bad = sorted(n for n in {IO_LIBRARIES!r} if n in sys.modules)\n'
        'print(",".join(bad))\n'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '', f'core modules imported {out.stdout.strip()}'
