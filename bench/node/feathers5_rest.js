// The REST scenario's Feathers 5 server: @feathersjs/koa with its REST transport, a `todos`
// service whose find returns the same 20 records as bench/servers/rest_app.py, and `htodos`, the
// same with the three hooks of that file's `ff_hooks` (around timing, before check, after
// removing `secret`).
// Usage: node feathers5_rest.js PORT
'use strict';
const { feathers } = require('@feathersjs/feathers');
const { koa, rest, bodyParser, errorHandler } = require('@feathersjs/koa');

const RECORDS = Array.from({ length: 20 }, (_, k) => {
  const i = k + 1;
  return { id: i, text: `todo number ${i}`, complete: i % 3 === 0, companyId: 1 + i % 2, secret: `hash-${String(i).padStart(4, '0')}` };
});

class Todos {
  async find () { return RECORDS; }
}

const app = koa(feathers());
app.use(errorHandler());
app.use(bodyParser());
app.configure(rest());
app.use('todos', new Todos());
app.use('htodos', new Todos());
const strip = (item) => { const { secret, ...rest } = item; return rest; };
app.service('htodos').hooks({
  around: {
    all: [async (context, next) => {
      const started = process.hrtime.bigint();
      await next();
      context.params.took = Number(process.hrtime.bigint() - started) / 1e9;
    }]
  },
  before: {
    all: [(context) => {
      if (![undefined, 'rest', 'socketio'].includes(context.params.provider)) throw new Error('unknown provider');
    }]
  },
  after: {
    all: [(context) => {
      const value = context.dispatch !== undefined ? context.dispatch : context.result;
      context.dispatch = Array.isArray(value) ? value.map(strip) : strip(value);
    }]
  }
});

const port = Number(process.argv[2]);
app.listen(port, '127.0.0.1').then(() => console.log(`READY ${port}`));
