// A Feathers 5 server (koa REST + Socket.IO) with @feathersjs/memory services: the baseline the
// adapter conformance suite is run against over the wire (tests/test_adapter_suite.py).
// Serves the memory services SERVICES names, plus the test harness's bridge hook (see
// adapter_suite.js). Prints
// {"port": n} on stdout once it listens on 127.0.0.1 (PORT, or a free port when 0).
'use strict';
const { feathers } = require('@feathersjs/feathers');
const { koa, rest, bodyParser, errorHandler } = require('@feathersjs/koa');
const socketio = require('@feathersjs/socketio');
const { MemoryService } = require('@feathersjs/memory');

const BRIDGE = '__adapterTestBridge';

// Test harness only: the options the client-side suite set on its service object become the
// service's options for this call (the suite calls one at a time), and params.paginate and
// params.adapter are put back into params.
const DEFAULTS = new Map();
function bridgeHook(context) {
  const query = context.params.query;
  if (!DEFAULTS.has(context.service)) DEFAULTS.set(context.service, { ...context.service.options });
  const carried = query && typeof query[BRIDGE] === 'string' ? JSON.parse(query[BRIDGE]) : {};
  Object.assign(context.service.options, DEFAULTS.get(context.service), carried.options || {});
  if (!query || !(BRIDGE in query)) return;
  const { [BRIDGE]: _, ...rest } = query;
  const params = { ...context.params, query: rest };
  if (carried.paginate !== undefined) params.paginate = carried.paginate;
  if (carried.adapter !== undefined) params.adapter = carried.adapter;
  context.params = params;
}

const app = koa(feathers());
app.use(errorHandler());
app.use(bodyParser());
app.configure(rest());
app.configure(socketio());
app.hooks({ before: { all: [bridgeHook] } });
// SERVICES: a JSON list of [path, idProp]; each is a fresh memory service with Feathers' own
// test settings (no pagination, multi off, the custom event 'testing').
for (const [path, id] of JSON.parse(process.env.SERVICES || '[["people", "id"]]')) {
  app.use(path, new MemoryService({ id, events: ['testing'] }));
}

app.listen(Number(process.env.PORT || 0), '127.0.0.1').then((server) => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
