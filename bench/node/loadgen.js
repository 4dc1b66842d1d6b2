// Load generator for bench/run: socket.io-client and the npm primus client, 127.0.0.1 only.
// Usage: node loadgen.js SCENARIO 'JSON options'  -> one JSON object on stdout.
//
// Options every scenario takes:
//   url        http://127.0.0.1:PORT (anything else is refused)
//   dialect    'legacy' (emit('todos::create', data, {}, ack)) or 'modern' (emit('create', 'todos', ...))
//   transport  'socketio' or 'primus'
// Scenarios:
//   rpc     clients, inflight, seconds: create-with-ack round trips; throughput and latency
//   fanout  clients, service ('todos' unfiltered, 'ctodos' company filter, 'ptodos' company
//           channel filter), events, burst:
//           time until the last recipient has one event (sequential events), deliveries/s (burst)
//   slow    clients, events: the ctodos fan-out to everybody else, without then with a client whose
//           filter sleeps 1 s
//   hold    steps [250, 500, ...], hold (s), pid (server pid for RSS): the connections held
// Every wait is bounded; the process exits by itself (a watchdog kills it after `deadline` s).
'use strict';
const fs = require('fs');
const { io } = require('socket.io-client');
const Primus = require('primus');

const scenario = process.argv[2];
const opts = JSON.parse(process.argv[3] || '{}');
if (!/^https?:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/.test(opts.url || '')) {
  console.error('loadgen: loopback URLs only');
  process.exit(2);
}
const deadline = setTimeout(() => {
  console.error(`loadgen: ${scenario} passed its deadline of ${opts.deadline || 300} s`);
  process.exit(3);
}, (opts.deadline || 300) * 1000);
deadline.unref();

const PrimusSocket = Primus.createSocket({ transformer: 'websockets', plugin: { emitter: require('primus-emitter') } });
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- clients ---------------------------------------------------------------------------------------
class Client {
  constructor (auth) {
    this.auth = auth;
    this.connected = false;
    this.handlers = new Map();
  }

  connect (timeoutMs) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      const done = (ok) => { clearTimeout(timer); resolve(ok); };
      if (opts.transport === 'primus') {
        const q = new URLSearchParams(Object.entries(this.auth).map(([k, v]) => [k, String(v)]));
        const s = this.sock = new PrimusSocket(`${opts.url}?${q}`, { strategy: false, manual: false });
        s.on('open', () => { this.connected = true; done(true); });
        s.on('end', () => { this.connected = false; });
        s.on('close', () => { this.connected = false; });
        s.on('error', () => done(false));
      } else {
        const s = this.sock = io(opts.url, { transports: ['websocket'], auth: this.auth, reconnection: false, forceNew: true, timeout: timeoutMs });
        s.on('connect', () => { this.connected = true; done(true); });
        s.on('disconnect', () => { this.connected = false; });
        s.on('connect_error', () => done(false));
      }
    });
  }

  on (event, fn) { this.sock.on(event, fn); }

  create (service, data) {
    return new Promise((resolve, reject) => {
      const ack = (err, result) => (err ? reject(err) : resolve(result));
      const args = opts.dialect === 'modern' ? ['create', service, data, {}, ack] : [`${service}::create`, data, {}, ack];
      if (opts.transport === 'primus') this.sock.send(...args);
      else this.sock.emit(...args);
    });
  }

  close () {
    try { if (opts.transport === 'primus') this.sock.end(); else this.sock.close(); } catch (e) { /* gone */ }
  }
}

async function connectMany (n, authOf, batch = 50) {
  const clients = [];
  for (let i = 0; i < n; i += batch) {
    const group = [];
    for (let j = i; j < Math.min(n, i + batch); j++) group.push(new Client(authOf(j)));
    const ok = await Promise.all(group.map((c) => c.connect(20000)));
    clients.push(...group.filter((c, k) => ok[k]));
    if (ok.some((x) => !x)) break; // the server stopped admitting: report what was held
  }
  return clients;
}

function closeAll (clients) { for (const c of clients) c.close(); }

function stats (values) {
  if (!values.length) return { n: 0, p50: null, p99: null, mean: null, max: null };
  const s = [...values].sort((a, b) => a - b);
  const pick = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: pick(0.5), p99: pick(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length, max: s[s.length - 1] };
}

function rssKb (pid) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch (e) { return null; }
}

// Watches `event` on every client and resolves when each expected recipient has every id.
class Arrivals {
  constructor (clients, event) {
    this.waiting = new Map(); // id -> {left, last, resolve}
    this.early = new Map(); // id -> [arrival times] for events faster than their create call
    for (const c of clients) {
      c.on(event, (data) => this.arrive(data && data.id));
    }
  }

  arrive (id) {
    const t = now();
    const w = this.waiting.get(id);
    if (!w) {
      if (!this.early.has(id)) this.early.set(id, []);
      this.early.get(id).push(t);
      return;
    }
    w.last = t;
    if (--w.left === 0) { this.waiting.delete(id); w.resolve(w.last); }
  }

  // Resolves with the arrival time of the last of `count` deliveries of `id`, or null on timeout.
  expect (id, count, timeoutMs) {
    return new Promise((resolve) => {
      const early = this.early.get(id) || [];
      this.early.delete(id);
      const w = { left: count - early.length, last: early.length ? Math.max(...early) : null, resolve };
      if (w.left <= 0) return resolve(w.last);
      const timer = setTimeout(() => { this.waiting.delete(id); resolve(null); }, timeoutMs);
      w.resolve = (t) => { clearTimeout(timer); resolve(t); };
      this.waiting.set(id, w);
    });
  }
}

// -- scenarios -------------------------------------------------------------------------------------
async function rpc () {
  const n = opts.clients || 50;
  const inflight = opts.inflight || 4;
  const seconds = opts.seconds || 5;
  const clients = await connectMany(n, () => ({ companyId: 1 }));
  if (clients.length < n) return { error: `only ${clients.length}/${n} clients connected` };
  const latencies = [];
  let errors = 0;
  const warmEnd = now() + 1000;
  const end = warmEnd + seconds * 1000;
  let counted = 0;
  const worker = async (c) => {
    while (now() < end) {
      const t0 = now();
      try { await c.create('todos', { text: 'rpc', companyId: 1 }); } catch (e) { errors++; }
      const t1 = now();
      if (t0 >= warmEnd && t1 <= end) { latencies.push(t1 - t0); counted++; }
    }
  };
  await Promise.all(clients.flatMap((c) => Array.from({ length: inflight }, () => worker(c))));
  closeAll(clients);
  return { clients: n, inflight, seconds, calls: counted, errors, throughput: counted / seconds, latency_ms: stats(latencies) };
}

async function fanout () {
  const n = opts.clients || 100;
  const service = opts.service || 'todos';
  const filtered = service !== 'todos';
  // With the company filter half the clients (even index) are company 1 and get the event.
  const clients = await connectMany(n, (i) => ({ companyId: filtered ? (i % 2) + 1 : 1 }));
  if (clients.length < n) { closeAll(clients); return { error: `only ${clients.length}/${n} clients connected` }; }
  const recipients = filtered ? Math.ceil(n / 2) : n;
  const arrivals = new Arrivals(clients, `${service} created`);
  const producer = clients[0];
  await sleep(300);
  const times = [];
  let lost = 0;
  for (let k = 0; k < (opts.events || 20); k++) {
    const t0 = now();
    const todo = await producer.create(service, { text: `fan-out ${k}`, companyId: 1 });
    const last = await arrivals.expect(todo.id, recipients, 10000);
    if (last === null) lost++; else times.push(last - t0);
    await sleep(20);
  }
  // Burst: `burst` creates back to back; deliveries per second until the last one landed.
  const burst = opts.burst || 20;
  const t0 = now();
  const ids = await Promise.all(Array.from({ length: burst }, (_, k) =>
    producer.create(service, { text: `burst ${k}`, companyId: 1 }).then((t) => t.id)));
  const lasts = await Promise.all(ids.map((id) => arrivals.expect(id, recipients, 20000)));
  const done = lasts.filter((t) => t !== null);
  const burstMs = done.length ? Math.max(...done) - t0 : null;
  closeAll(clients);
  return {
    clients: n, service, recipients, events: times.length, lost, last_ms: stats(times),
    burst, burst_lost: burst - done.length, burst_ms: burstMs,
    deliveries_per_s: burstMs && done.length === burst ? (burst * recipients) / (burstMs / 1000) : null
  };
}

async function slow () {
  const n = opts.clients || 100;
  const events = opts.events || 15;
  const clients = await connectMany(n, () => ({ companyId: 1 }));
  if (clients.length < n) { closeAll(clients); return { error: `only ${clients.length}/${n} clients connected` }; }
  const arrivals = new Arrivals(clients, 'ctodos created');
  const producer = clients[0];
  await sleep(300);
  const run = async (label) => {
    const times = [];
    let lost = 0;
    for (let k = 0; k < events; k++) {
      const t0 = now();
      const todo = await producer.create('ctodos', { text: `${label} ${k}`, companyId: 1 });
      const last = await arrivals.expect(todo.id, n, 10000);
      if (last === null) lost++; else times.push(last - t0);
      await sleep(50);
    }
    return { lost, last_ms: stats(times) };
  };
  const without = await run('without');
  const slowClient = new Client({ companyId: 1, slow: 1 });
  const ok = await slowClient.connect(20000);
  await sleep(300);
  const withSlow = await run('with');
  slowClient.close();
  closeAll(clients);
  if (!ok) return { error: 'the slow client did not connect' };
  return {
    clients: n, without, with_slow: withSlow,
    extra_ms: without.last_ms.p50 !== null && withSlow.last_ms.p50 !== null ? withSlow.last_ms.p50 - without.last_ms.p50 : null
  };
}

async function hold () {
  const steps = opts.steps || [250, 500, 1000];
  const holdS = opts.hold || 5;
  const pid = opts.pid;
  const base = rssKb(pid);
  const clients = [];
  const out = [];
  let arrivals = null;
  const received = new Map();
  for (const step of steps) {
    const more = await connectMany(step - clients.length, () => ({ companyId: 1 }));
    for (const c of more) c.on('todos created', (t) => received.set(t.id, (received.get(t.id) || 0) + 1));
    clients.push(...more);
    // hold: a fan-out every second; count who got each one
    let delivered = 0; let expected = 0;
    for (let s = 0; s < holdS; s++) {
      await sleep(1000);
      const alive = clients.filter((c) => c.connected);
      if (!alive.length) break;
      let todo = null;
      try { todo = await Promise.race([alive[0].create('todos', { text: 'hold', companyId: 1 }), sleep(10000).then(() => null)]); } catch (e) { todo = null; }
      expected += alive.length;
      if (todo) {
        const t0 = now();
        while ((received.get(todo.id) || 0) < alive.length && now() - t0 < 5000) await sleep(20);
        delivered += received.get(todo.id) || 0;
      }
    }
    const alive = clients.filter((c) => c.connected).length;
    const rss = rssKb(pid);
    const row = {
      target: step, connected: clients.length, alive, delivered, expected,
      rss_mb: rss / 1024, per_conn_kb: base && rss && alive ? (rss - base) / alive : null,
      held: clients.length === step && alive === step && delivered === expected
    };
    out.push(row);
    console.error(`hold ${JSON.stringify(row)}`);
    if (!row.held) break;
  }
  closeAll(clients);
  void arrivals;
  return { base_rss_mb: base / 1024, steps: out, held: Math.max(0, ...out.filter((r) => r.held).map((r) => r.target)) };
}

const scenarios = { rpc, fanout, slow, hold };
if (!scenarios[scenario]) {
  console.error(`loadgen: unknown scenario ${scenario}`);
  process.exit(2);
}
scenarios[scenario]().then((result) => {
  process.stdout.write(JSON.stringify(Object.assign({ scenario, transport: opts.transport, dialect: opts.dialect }, result)) + '\n');
  setTimeout(() => process.exit(0), 200);
}, (err) => {
  process.stdout.write(JSON.stringify({ scenario, error: String(err && err.stack || err) }) + '\n');
  process.exit(1);
});
