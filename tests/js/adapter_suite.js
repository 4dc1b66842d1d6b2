// Runs Feathers' own adapter conformance suite, @feathersjs/adapter-tests 5 (every test name it
// declares), over the wire: through @feathersjs/client 5 services, on Socket.IO and on REST, against
// every target in the ADAPTER_TARGETS environment variable (a JSON list of
// {label, url, transport: 'socketio' | 'rest', path, idProp}). All targets run in this one process,
// one after the other, so a whole matrix costs one Node start-up.
//
// Output, one JSON value per line on stdout:
//   {"kind": "names", "names": [...]}              every test name the package declares
//   {"kind": "test", "target": label, "title": ..., "state": "passed" | "failed", "error": ...}
//   {"kind": "end", "stats": {...}}
//
// The bridge (test harness only, never part of flask_feathers): the suite writes service options on
// the object it is given (`service.options.multi = true`, `service.options.paginate = {...}`) and
// passes `params.paginate` and `params.adapter`, all of which live on the server in Feathers and
// which no client sends. Here every client-side service gets its own `options` object, and a client
// hook carries that object, `params.paginate` and `params.adapter` to the server as one JSON string
// in the query key `__adapterTestBridge`. The servers under test (the Python app in
// tests/test_adapter_suite.py, the Feathers 5 one in tests/js/feathers_memory_server.js) remove the
// key in an app hook, set the service's `multi` and `paginate` options to what the client-side
// object holds (the server's defaults where it holds nothing), and put `paginate` and `adapter`
// into params. The suite's calls are sequential, so setting options per call is exact. Without it
// every test that writes an option or passes those params would test the bridge's absence, not
// the adapter.
'use strict';
const fs = require('fs');
const path = require('path');
const Mocha = require('mocha');
const io = require('socket.io-client');
const { feathers } = require('@feathersjs/feathers');
const socketioClient = require('@feathersjs/socketio-client');
const restClient = require('@feathersjs/rest-client');
const errors = require('@feathersjs/errors');
const adapterTests = require('@feathersjs/adapter-tests');

const BRIDGE = '__adapterTestBridge';
const TIMEOUT = Number(process.env.ADAPTER_TEST_TIMEOUT || 20000);
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');

// Every test name the package declares, read from its own type declarations.
function declaredNames() {
  const file = path.join(path.dirname(require.resolve('@feathersjs/adapter-tests')), 'declarations.d.ts');
  const text = fs.readFileSync(file, 'utf8');
  const names = [];
  for (const match of text.matchAll(/[=|]\s*'([^']+)'/g)) {
    if (!names.includes(match[1])) names.push(match[1]);
  }
  if (names.length < 50) throw new Error(`found only ${names.length} test names in ${file}`);
  return names;
}

function bridgeHook(context) {
  const carried = {};
  const options = context.service && context.service.options;
  if (options && Object.keys(options).length) carried.options = options;
  if (context.params.paginate !== undefined) carried.paginate = context.params.paginate;
  if (context.params.adapter !== undefined) carried.adapter = context.params.adapter;
  if (Object.keys(carried).length) {
    context.params = { ...context.params,
      query: { ...(context.params.query || {}), [BRIDGE]: JSON.stringify(carried) } };
  }
}

function clientApp(target, sockets) {
  const app = feathers();
  if (target.transport === 'socketio') {
    const socket = io(target.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(socket);
    app.configure(socketioClient(socket, { timeout: TIMEOUT }));
  } else if (target.transport === 'rest') {
    app.configure(restClient(target.url).fetch(fetch));
  } else {
    throw new Error(`unknown transport ${target.transport}`);
  }
  app.hooks({ before: { all: [bridgeHook] } });
  // Each client-side service gets an options object of its own (the REST client's is the
  // connection's, shared by all its services).
  app.service(target.path).options = {};
  return app;
}

async function main() {
  const targets = JSON.parse(process.env.ADAPTER_TARGETS || '[]');
  if (!targets.length) throw new Error('ADAPTER_TARGETS lists no target');
  const names = declaredNames();
  out({ kind: 'names', names });

  const mocha = new Mocha({ timeout: TIMEOUT, reporter: function Silent() {} });
  mocha.suite.emit('pre-require', global, 'adapter-suite', mocha);
  const sockets = [];
  const run = adapterTests(names);
  for (const target of targets) {
    const app = clientApp(target, sockets);
    // eslint-disable-next-line no-undef
    describe(target.label, () => run(app, errors, target.path, target.idProp));
  }

  const labelOf = (test) => {
    let suite = test.parent;
    while (suite.parent && !suite.parent.root) suite = suite.parent;
    return suite.title;
  };
  const runner = mocha.run((failures) => {
    for (const socket of sockets) socket.close();
    out({ kind: 'end', failures });
    process.exit(0);
  });
  runner.on('pass', (test) => out({ kind: 'test', target: labelOf(test), title: test.title, state: 'passed' }));
  runner.on('fail', (test, err) => out({
    kind: 'test', target: labelOf(test), title: test.title, state: 'failed', hook: test.type === 'hook',
    error: String((err && err.message) || err).slice(0, 500)
  }));
}

process.on('unhandledRejection', (e) => {
  process.stderr.write('unhandled rejection: ' + (e && e.stack || e) + '\n');
  process.exit(3);
});
main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(2); });
