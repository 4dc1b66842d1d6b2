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
//   storm   clients, rounds, bound_s, gap_ms, mix (['socketio'] or ['socketio', 'primus']), pid:
//           all clients close at once, then all reconnect at once; per round the time until 50%,
//           90%, 99%, 100% are back, the next broadcast, the server's threads and RSS
//   hold10k clients, mix, pid: that many connections at once, one broadcast; RSS per connection
//   sustained clients, service, creates, inflight, pid: creates spread over the listeners with
//           `inflight` in flight; deliveries/s, what is missing, latency from each create's ack
// storm and hold10k spread their clients over worker processes (swarm.js), each with its own
// loopback source address; the coordinator samples /proc/<pid>/status of the server every 100 ms.
// Every wait is bounded; the process exits by itself (a watchdog kills it after `deadline` s).
'use strict';
const fs = require('fs');

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

const { Client: BaseClient, now, wall, sleep, stats, procStatus, nofile } = require('./client');
const { Swarm } = require('./swarm');

// -- clients ---------------------------------------------------------------------------------------
// A client of this run's server, transport and dialect (client.js).
// Connected clients of this process that the server (or the network) ended: 'transport: reason' -> n
const drops = {};
const noteDrop = (transport, reason) => { const k = `${transport}: ${reason}`; drops[k] = (drops[k] || 0) + 1; };

class Client extends BaseClient {
  constructor (auth, transport = opts.transport) {
    super({ url: opts.url, dialect: opts.dialect, transport, auth, onDrop: noteDrop });
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

function rssKb (pid) {
  const status = procStatus(pid);
  return status ? status.rss_kb : null;
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

// -- many clients: storm, hold10k ------------------------------------------------------------------
function readNumber (path) {
  try { return Number(fs.readFileSync(path, 'utf8').trim()); } catch (e) { return null; }
}

// The machine's task limit (threads count as tasks) and how many tasks exist now.
function machineTasks () {
  let total = null;
  try { total = Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[3].split('/')[1]); } catch (e) { /* keep null */ }
  return total;
}
const TASK_LIMIT = Math.min(readNumber('/proc/sys/kernel/pid_max') || Infinity, readNumber('/proc/sys/kernel/threads-max') || Infinity);

// Samples the server's threads and RSS every 100 ms, keeps the peak of a window, and trips when the
// server process is gone or the machine's tasks pass 75% of its limit (a threading server takes
// several threads per client; past the machine's limit nothing on it can start a thread, the load
// generator included). A trip aborts the scenario with that reason, reported as its error.
class Sampler {
  constructor (pid) {
    this.pid = pid;
    this.peak = null;
    this.tripped = null;
    this.maxTasks = 0;
    this.onTrip = [];
    this.timer = setInterval(() => this.tick(), 100);
  }

  tick () {
    const s = procStatus(this.pid);
    if (!s) { this.trip('the server process is gone'); return; }
    if (this.peak) {
      this.peak.threads = Math.max(this.peak.threads, s.threads);
      this.peak.rss_kb = Math.max(this.peak.rss_kb, s.rss_kb);
    }
    const tasks = machineTasks();
    if (tasks !== null) {
      this.maxTasks = Math.max(this.maxTasks, tasks);
      if (tasks > 0.75 * TASK_LIMIT) {
        this.trip(`the machine reached ${tasks} tasks (limit ${TASK_LIMIT}, pid_max/threads-max); ` +
                  `the server had ${s.threads} threads`);
      }
    }
  }

  trip (reason) {
    if (this.tripped) return;
    this.tripped = reason;
    for (const fn of this.onTrip) fn(reason);
  }

  // Resolves never; rejects when the sampler trips: race it against a wait.
  get aborted () {
    if (!this._aborted) {
      this._aborted = new Promise((resolve, reject) => {
        if (this.tripped) reject(new Error(this.tripped));
        this.onTrip.push((reason) => reject(new Error(reason)));
      });
      this._aborted.catch(() => null);
    }
    return this._aborted;
  }

  guard (promise) { return Promise.race([promise, this.aborted]); }
  startPeak () { const s = procStatus(this.pid); this.peak = s ? { ...s } : { threads: 0, rss_kb: 0 }; }
  takePeak () { const p = this.peak; this.peak = null; return p; }
  now () { return procStatus(this.pid); }
  stop () { clearInterval(this.timer); }
}

// The listen queue length of the server's socket (`ss`: Send-Q of a LISTEN socket), or null.
function listenBacklog (url) {
  try {
    const port = new URL(url).port;
    const out = require('child_process').execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8', timeout: 5000 });
    const cols = out.trim().split(/\s+/);
    return cols.length >= 3 ? Number(cols[2]) : null;
  } catch (e) { return null; }
}

// The kernel's TCP listen-queue counters (this network namespace: every listener of the machine).
function tcpExt () {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/).map(Number);
    const out = {};
    for (const k of ['ListenOverflows', 'ListenDrops', 'SyncookiesSent']) {
      const i = names.indexOf(k);
      if (i > 0) out[k] = values[i];
    }
    return out;
  } catch (e) { return {}; }
}

function delta (a, b) {
  const out = {};
  for (const k of Object.keys(b)) if (k in a) out[k] = b[k] - a[k];
  return out;
}

// clients 0..n-1: transport of client i under a mix (['socketio'] or ['socketio', 'primus'])
const transportOf = (mix, i) => mix[i % mix.length];

function splitSpecs (n, mix, workers) {
  const shares = Array.from({ length: workers }, () => []);
  for (let i = 0; i < n; i++) shares[i % workers].push({ transport: transportOf(mix, i), auth: { companyId: 1 } });
  return shares;
}

// Checks the open-files limits of the server and of this process (the workers inherit it).
function fdCheck (pid, n, perWorker) {
  const server = nofile(pid);
  const client = nofile(process.pid);
  const problems = [];
  if (server !== null && server < n + 100) problems.push(`server open-files limit ${server} < ${n + 100}`);
  if (client !== null && client < perWorker + 100) problems.push(`load generator open-files limit ${client} < ${perWorker + 100}`);
  return { server_nofile: server === Infinity ? 'unlimited' : server, client_nofile: client === Infinity ? 'unlimited' : client, problems };
}

// Starts the swarm and connects n clients; returns {swarm, setup, producer} (setup: per worker).
async function startSwarm (n, mix, perWorker, connectBoundS, sampler) {
  const workers = Math.max(1, Math.ceil(n / perWorker));
  const swarm = new Swarm(workers);
  await sampler.guard(swarm.ready());
  const shares = splitSpecs(n, mix, workers);
  const deadlineWall = wall() + connectBoundS * 1000;
  const setup = await sampler.guard(swarm.all((w) => ({
    cmd: 'setup', specs: shares[w.index], url: opts.url, dialect: opts.dialect, localAddress: w.localAddress,
    event: 'todos created', concurrency: 64, timeoutMs: 20000, deadline: deadlineWall
  }), connectBoundS * 1000 + 30000));
  return { swarm, setup, workers };
}

function sumCounts (maps) {
  const out = {};
  for (const m of maps) for (const [k, v] of Object.entries(m || {})) out[k] = (out[k] || 0) + v;
  return out;
}
const sumErrors = (parts) => sumCounts(parts.map((p) => p.errors));

// One create on `todos` by the producer, then how many swarm clients got it (bounded waits).
// The producer is an idle socket.io client outside the storm: if the server dropped it, that is
// reported (producer_dropped), and a new producer connection (bounded) makes the check.
async function broadcastCheck (swarm, producer, sampler, n) {
  let dropped = false;
  if (!producer.connected) {
    dropped = true;
    if (!await sampler.guard(producer.connect(10000))) {
      return { ok: false, producer_dropped: true, error: `the producer was disconnected and could not connect again (${producer.lastError})`, received: 0, expected: n };
    }
  }
  let todo;
  try { todo = await sampler.guard(producer.createWithin('todos', { text: 'after', companyId: 1 }, 10000)); } catch (e) {
    if (sampler.tripped) throw e;
    return { ok: false, producer_dropped: dropped, error: `create: ${String(e.message || e).slice(0, 80)}`, received: 0, expected: n };
  }
  const t0 = now();
  const counts = await sampler.guard(swarm.all(() => ({ cmd: 'count', id: todo.id, until: wall() + 10000 }), 20000));
  const received = counts.reduce((a, c) => a + c.received, 0);
  const live = counts.reduce((a, c) => a + c.live, 0);
  return { ok: received === n, producer_dropped: dropped, received, live, expected: n, wait_ms: now() - t0, drops: sumCounts(counts.map((c) => c.drops)), alive_by: sumCounts(counts.map((c) => c.alive_by)) };
}

// Time until p of the n planned clients were back (ms), or null when fewer came back.
function timeToFraction (sorted, n, p) {
  const k = Math.ceil(p * n);
  return sorted.length >= k ? sorted[k - 1] : null;
}

async function storm () {
  const n = opts.clients || 2000;
  const rounds = opts.rounds || 3;
  const boundMs = (opts.bound_s || 60) * 1000;
  const gapMs = opts.gap_ms === undefined ? 1000 : opts.gap_ms;
  const mix = opts.mix || ['socketio'];
  const perWorker = opts.per_worker || 2500;
  const pid = opts.pid;
  const fds = fdCheck(pid, n, perWorker);
  const base = { clients: n, mix, rounds_planned: rounds, bound_s: boundMs / 1000, gap_ms: gapMs, task_limit: TASK_LIMIT, fds, listen_backlog: listenBacklog(opts.url) };
  if (fds.problems.length) return Object.assign(base, { error: fds.problems.join('; ') });
  const sampler = new Sampler(pid);
  const producer = new Client({ companyId: 1 }, 'socketio');
  let swarm = null;
  const out = [];
  try {
    if (!await sampler.guard(producer.connect(20000))) return Object.assign(base, { error: `the producer could not connect (${producer.lastError})` });
    const started = await startSwarm(n, mix, perWorker, opts.connect_bound_s || 120, sampler);
    swarm = started.swarm;
    const connected = started.setup.reduce((a, s) => a + s.connected, 0);
    Object.assign(base, { workers: started.workers, connected, connect_ms: Math.max(...started.setup.map((s) => s.ms)), connect_errors: sumErrors(started.setup) });
    console.error(`storm: ${connected}/${n} connected in ${Math.round(base.connect_ms)} ms`);
    if (connected === 0) return Object.assign(base, { error: 'no client could connect' });
    await sleep(1000);
    for (let r = 1; r <= rounds; r++) {
      const before = sampler.now();
      const kernelBefore = tcpExt();
      sampler.startPeak();
      const t0 = wall() + 300;
      const closed = await sampler.guard(swarm.all(() => ({ cmd: 'close', at: t0 }), 20000));
      const t1 = Math.max(t0 + gapMs, wall() + 20);
      const back = await sampler.guard(swarm.all(() => ({ cmd: 'reconnect', at: t1, boundMs }), boundMs + 20000));
      const times = Float64Array.from(back.flatMap((b) => b.times)).sort();
      const missing = n - times.length;
      const roundEnd = t1 + (missing ? boundMs : (times.length ? times[times.length - 1] : 0));
      const broadcast = await broadcastCheck(swarm, producer, sampler, n);
      await sampler.guard(sleep(Math.max(0, roundEnd + 5000 - wall())));
      const after = sampler.now();
      const peak = sampler.takePeak();
      const kernel = delta(kernelBefore, tcpExt());
      const row = {
        round: r, tried: back.reduce((a, b) => a + b.tried, 0), back: times.length, missing,
        ms_50: timeToFraction(times, n, 0.5), ms_90: timeToFraction(times, n, 0.9),
        ms_99: timeToFraction(times, n, 0.99), ms_100: timeToFraction(times, n, 1.0),
        errors: sumErrors(back), close_loop_ms: Math.max(...closed.map((c) => c.loop_ms)),
        reconnect_loop_ms: Math.max(...back.map((b) => b.loop_ms)), late_ms: Math.max(...back.map((b) => b.late_ms)),
        client_cpu_ms: Math.max(...back.map((b) => b.cpu_ms || 0)),
        broadcast, before, peak, after, kernel
      };
      out.push(row);
      console.error(`storm round ${JSON.stringify(row)}`);
    }
    return Object.assign(base, { rounds: out, max_machine_tasks: sampler.maxTasks });
  } catch (err) {
    return Object.assign(base, { rounds: out, max_machine_tasks: sampler.maxTasks, error: String(err && err.message || err) });
  } finally {
    sampler.stop();
    producer.close();
    if (swarm) await swarm.shutdown();
  }
}

async function hold10k () {
  const n = opts.clients || 10000;
  const mix = opts.mix || ['socketio'];
  const perWorker = opts.per_worker || 2500;
  const pid = opts.pid;
  const fds = fdCheck(pid, n, perWorker);
  const base = { clients: n, mix, task_limit: TASK_LIMIT, fds };
  if (fds.problems.length) return Object.assign(base, { error: fds.problems.join('; ') });
  const sampler = new Sampler(pid);
  const producer = new Client({ companyId: 1 }, 'socketio');
  let swarm = null;
  try {
    if (!await sampler.guard(producer.connect(20000))) return Object.assign(base, { error: `the producer could not connect (${producer.lastError})` });
    await sleep(1000);
    const before = sampler.now();
    sampler.startPeak();
    const started = await startSwarm(n, mix, perWorker, opts.connect_bound_s || 180, sampler);
    swarm = started.swarm;
    const connected = started.setup.reduce((a, s) => a + s.connected, 0);
    Object.assign(base, { workers: started.workers, connected, connect_ms: Math.max(...started.setup.map((s) => s.ms)), connect_errors: sumErrors(started.setup), before });
    console.error(`hold10k: ${connected}/${n} connected in ${Math.round(base.connect_ms)} ms`);
    await sampler.guard(sleep(2000));
    const broadcast = await broadcastCheck(swarm, producer, sampler, n);
    await sampler.guard(sleep((opts.hold_s || 3) * 1000));
    const aliveParts = await sampler.guard(swarm.all(() => ({ cmd: 'alive' }), 10000));
    const alive = aliveParts.reduce((a, c) => a + c.alive, 0);
    base.alive_by = sumCounts(aliveParts.map((c) => c.alive_by));
    // connected clients that were ended by the server (or the network) before the end, by reason
    base.drops = sumCounts([broadcast.drops].concat(aliveParts.map((c) => c.drops)));
    const after = sampler.now();
    const peak = sampler.takePeak();
    return Object.assign(base, {
      broadcast, alive, after, peak, max_machine_tasks: sampler.maxTasks,
      per_conn_kb: before && after && alive ? (after.rss_kb - before.rss_kb) / alive : null,
      held: connected === n && alive === n && broadcast.ok
    });
  } catch (err) {
    return Object.assign(base, { max_machine_tasks: sampler.maxTasks, held: false, error: String(err && err.message || err) });
  } finally {
    sampler.stop();
    producer.close();
    if (swarm) await swarm.shutdown();
  }
}

// -- sustained fan-out -----------------------------------------------------------------------------
// `clients` listeners (company 1 and 2 in turn), `creates` creates spread over them with `inflight`
// in flight; every delivery is timed against the ack of its create.
async function sustained () {
  const n = opts.clients || 500;
  const service = opts.service || 'ctodos';
  const total = opts.creates || 2000;
  const inflight = opts.inflight || 32;
  const pid = opts.pid;
  const filtered = service !== 'todos';
  const perEvent = filtered ? Math.ceil(n / 2) : n; // companies alternate: even index company 1
  const expected = total * perEvent;
  const base = { clients: n, service, creates: total, inflight, recipients_per_event: perEvent, expected };
  const fds = fdCheck(pid, n, n);
  base.fds = fds;
  if (fds.problems.length) return Object.assign(base, { error: fds.problems.join('; ') });
  const clients = await connectMany(n, (i) => ({ companyId: (i % 2) + 1 }));
  if (clients.length < n) { closeAll(clients); return Object.assign(base, { error: `only ${clients.length}/${n} clients connected` }); }
  // per event k: send and ack times (ms, NaN until acked), deliveries so far
  const idToK = new Map();
  const ackAt = new Float64Array(total).fill(NaN);
  const sentAt = new Float64Array(total).fill(NaN);
  const got = new Int32Array(total);
  const early = new Map(); // id -> [arrival times] for deliveries before the create's ack came back
  const arrival = new Float64Array(expected); // per delivery: its arrival time (ms)
  const ofEvent = new Int32Array(expected); // per delivery: its event k
  let delivered = 0;
  let strays = 0; // deliveries beyond the recipients expected for an event
  let lastDelivery = 0;
  const record = (k, t) => {
    if (got[k] >= perEvent) { strays++; return; }
    got[k]++;
    arrival[delivered] = t;
    ofEvent[delivered] = k;
    delivered++;
    if (t > lastDelivery) lastDelivery = t;
  };
  const event = `${service} created`;
  for (const c of clients) {
    c.on(event, (data) => {
      const t = now();
      const id = data && data.id;
      const k = idToK.get(id);
      if (k !== undefined && !Number.isNaN(ackAt[k])) { record(k, t); return; }
      if (!early.has(id)) early.set(id, []);
      early.get(id).push(t);
    });
  }
  await sleep(500);
  const rssBefore = rssKb(pid);
  let next = 0;
  let acked = 0;
  let failed = 0;
  const failures = {};
  let firstSend = null;
  let lastAck = null;
  const createBound = now() + (opts.create_bound_s || 300) * 1000;
  let serverGone = false;
  let noListener = false;
  const lane = async () => {
    while (next < total && now() < createBound && !serverGone) {
      if (procStatus(pid) === null) { serverGone = true; break; }
      // spread over the listeners, both companies; a listener the server ended does not send (the
      // next connected one does); with none left, the rest is not sent
      let sender = null;
      for (let j = 0; j < n && !sender; j++) {
        const c = clients[(next * 7 + j) % n];
        if (c.connected) sender = c;
      }
      if (!sender) { noListener = true; break; }
      const k = next++;
      const t = now();
      if (firstSend === null) firstSend = t;
      sentAt[k] = t;
      try {
        const todo = await sender.createWithin(service, { text: `sustained ${k}`, companyId: (k % 2) + 1 }, 30000);
        const ta = now();
        ackAt[k] = ta;
        lastAck = ta;
        acked++;
        idToK.set(todo.id, k);
        const before = early.get(todo.id);
        if (before) { early.delete(todo.id); for (const t2 of before) record(k, t2); }
      } catch (e) {
        failed++;
        const why = String(e && e.message || e).slice(0, 60);
        failures[why] = (failures[why] || 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, lane));
  const notSent = total - next;
  const expectedAcked = acked * perEvent;
  // the backlog: wait (bounded) until every acked event reached all its recipients
  const waitFrom = lastAck === null ? now() : lastAck;
  const waitBound = waitFrom + (opts.drain_bound_s || 120) * 1000;
  while (delivered < expectedAcked && now() < waitBound && !serverGone) {
    await sleep(20);
    if (procStatus(pid) === null) serverGone = true;
  }
  if (now() < waitFrom + 5000 && delivered < expectedAcked) await sleep(waitFrom + 5000 - now());
  const end = now();
  const status = procStatus(pid);
  const alive = clients.filter((c) => c.connected).length;
  closeAll(clients);
  let by5s = 0;
  const lat = new Float64Array(delivered);
  const latSent = new Float64Array(delivered);
  for (let i = 0; i < delivered; i++) {
    const k = ofEvent[i];
    if (arrival[i] <= waitFrom + 5000) by5s++;
    lat[i] = arrival[i] - ackAt[k];
    latSent[i] = arrival[i] - sentAt[k];
  }
  let unmatched = 0; // deliveries of events whose create was never acked
  for (const list of early.values()) unmatched += list.length;
  const spanMs = delivered && firstSend !== null ? lastDelivery - firstSend : null;
  const error = serverGone ? 'the server process is gone'
    : noListener ? 'no listener was connected any more (the server ended them)' : null;
  return Object.assign(base, error ? { error } : {}, {
    acked, failed, failures, not_sent: notSent, delivered, strays, unmatched, drops,
    missing_at_5s: expected - by5s,
    missing: expected - delivered,
    creates_per_s: lastAck !== null && lastAck > firstSend ? acked / ((lastAck - firstSend) / 1000) : null,
    deliveries_per_s: spanMs ? delivered / (spanMs / 1000) : null,
    create_phase_ms: lastAck !== null ? lastAck - firstSend : null,
    span_ms: spanMs,
    last_ack_to_last_delivery_ms: lastAck !== null && delivered ? lastDelivery - lastAck : null,
    wait_ms: end - waitFrom,
    latency_from_ack_ms: stats(lat), latency_from_send_ms: stats(latSent),
    rss_before_mb: rssBefore !== null ? rssBefore / 1024 : null,
    rss_end_mb: status ? status.rss_kb / 1024 : null, threads_end: status ? status.threads : null,
    alive_at_end: alive
  });
}

const scenarios = { rpc, fanout, slow, hold, storm, hold10k, sustained };
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
