// Talks to a Primus endpoint with the npm primus 8 client (websockets
// transformer, primus-emitter plugin) and prints one JSON line per thing it
// sees. Usage: node primus_probe.js <url> [pathname]
// Used to check that the test-only server in tests/_primus_harness.py speaks
// the same protocol as the real client library.
'use strict';
var Primus = require('primus');
var url = process.argv[2];
var Socket = Primus.createSocket({
  transformer: 'websockets',
  pathname: process.argv[3] || '/primus',
  plugin: { emitter: require('primus-emitter') }
});

function out(kind, value) { process.stdout.write(JSON.stringify([kind, value]) + '\n'); }

var primus = new Socket(url, { pingTimeout: 3000, reconnect: { retries: 0 } });
out('options', { pingTimeout: primus.options.pingTimeout });
primus.on('outgoing::url', function (opts) { out('url-options', opts.query); });
primus.on('open', function () { out('open', null); });
primus.on('incoming::ping', function (t) { out('ping', t); });
primus.on('todos created', function (todo) { out('todos created', todo); });
primus.on('question', function (q, done) { done(null, q * 2); });
primus.send('todos::create', { description: 'from node' }, {}, function (error, todo) {
  out('created', [error, todo]);
  primus.send('todos::find', {}, function (error, todos) {
    out('found', [error, todos]);
    primus.id(function (id) {
      out('id', id);
      primus.send('todos::nope', {}, function (error) { out('nope', error); });
    });
  });
});
primus.on('end', function () { out('end', null); process.exit(0); });
process.stdin.on('data', function () { primus.end(); });
// Never hang a test run: give up after 20 s.
setTimeout(function () { out('gave up', null); process.exit(2); }, 20000).unref();
