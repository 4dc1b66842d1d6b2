// Many clients over several Node processes, for the storm and hold10k scenarios of loadgen.js.
//
// One process cannot open thousands of sockets at once quickly enough, so the coordinator (loadgen.js,
// through the Swarm class below) forks worker processes (this file) and drives them over IPC. Each
// worker holds its share of the clients and binds them to its own loopback source address
// (127.N.0.2, 127.N.1.2, ...: ephemeral ports are per source address, and three reconnect rounds of
// 10,000 clients leave tens of thousands of sockets in TIME_WAIT). N comes from the coordinator's
// pid, so a run does not inherit the TIME_WAIT sockets of the run before it on the same addresses
// (measured: 12,000 of them, left by a Feathers 5 storm, made the next server's storm clients
// connect at 500 a second for a minute, the kernel searching for a free port on every bind).
// The workers inherit the coordinator's CPU affinity (bench.py pins it to the client core).
//
// Times that cross processes are wall-clock milliseconds (client.js wall()); the coordinator asks
// every worker to act at the same wall time. Every wait is bounded; a worker exits when its
// coordinator goes away.
'use strict';
const { fork } = require('child_process');
const { Client, wall, sleep } = require('./client');

// -- worker ----------------------------------------------------------------------------------------
function runWorker () {
  let clients = []; // [{client, alive}] every client this worker was given
  const received = new Map(); // todo id -> number of deliveries to this worker's clients
  let event = null;
  let drops = {}; // 'transport: reason' -> connected clients the server (or the network) ended
  const onDrop = (transport, reason) => { const k = `${transport}: ${reason}`; drops[k] = (drops[k] || 0) + 1; };
  const takeDrops = () => { const d = drops; drops = {}; return d; };
  const aliveBy = () => {
    const out = {};
    for (const e of clients) if (e.alive && e.client.connected) out[e.client.transport] = (out[e.client.transport] || 0) + 1;
    return out;
  };

  const send = (msg) => { try { process.send(msg); } catch (e) { process.exit(0); } };
  process.on('disconnect', () => process.exit(0));

  const at = (when) => sleep(Math.max(0, when - wall()));

  // Connects `list` with at most `concurrency` attempts in flight, each bounded by `timeoutMs`,
  // and none started after `deadline` (wall ms). Failed clients stay closed (never retried).
  async function connectAll (list, concurrency, timeoutMs, deadline) {
    const times = []; // ms from the start to each connect
    const errors = {};
    let next = 0;
    const start = wall();
    const lane = async () => {
      while (next < list.length) {
        const entry = list[next++];
        const left = deadline - wall();
        if (left <= 0) { entry.alive = false; errors['not tried before the deadline'] = (errors['not tried before the deadline'] || 0) + 1; continue; }
        const ok = await entry.client.connect(Math.min(timeoutMs, left));
        entry.alive = ok;
        if (ok) times.push(wall() - start);
        else { const why = String(entry.client.lastError).slice(0, 60); errors[why] = (errors[why] || 0) + 1; }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
    return { connected: list.filter((e) => e.alive).length, failed: list.filter((e) => !e.alive).length, errors, ms: wall() - start };
  }

  const handlers = {
    // specs: [{transport, auth}], url, dialect, localAddress, event (counted by id), concurrency,
    // timeoutMs, deadline (wall ms)
    async setup (m) {
      event = m.event;
      clients = m.specs.map((spec) => {
        const client = new Client({ url: m.url, dialect: m.dialect, transport: spec.transport, auth: spec.auth, localAddress: m.localAddress, onDrop });
        client.on(event, (data) => {
          const id = data && data.id;
          received.set(id, (received.get(id) || 0) + 1);
        });
        return { client, alive: false };
      });
      return connectAll(clients, m.concurrency, m.timeoutMs, m.deadline);
    },
    // Closes every live client in one synchronous loop at wall time m.at.
    async close (m) {
      await at(m.at);
      const started = wall();
      let closed = 0;
      for (const entry of clients) { if (entry.alive) { entry.client.close(); closed++; } }
      return { closed, late_ms: started - m.at, loop_ms: wall() - started };
    },
    // At wall time m.at opens a new socket for every client that was alive (all in one synchronous
    // loop: no client-side pacing, no client reconnection timers); waits until each is connected
    // or m.boundMs passed. A client not back by then is closed and counted missing, and takes
    // no part in later rounds.
    async reconnect (m) {
      const live = clients.filter((e) => e.alive);
      await at(m.at);
      const started = wall();
      const cpu0 = process.cpuUsage();
      const times = [];
      const errors = {};
      const attempts = live.map((entry) => entry.client.connect(m.boundMs - (wall() - m.at)).then((ok) => {
        entry.alive = ok;
        if (ok) times.push(wall() - m.at);
        else { const why = String(entry.client.lastError).slice(0, 60); errors[why] = (errors[why] || 0) + 1; }
      }));
      const loopMs = wall() - started;
      await Promise.all(attempts);
      // this worker's CPU from the reconnect until its last client was back (or gave up): equal
      // to the round's time when the load generator, not the server, was what everyone waited for
      const cpu = process.cpuUsage(cpu0);
      return { tried: live.length, times, missing: live.length - times.length, errors, late_ms: started - m.at, loop_ms: loopMs, cpu_ms: (cpu.user + cpu.system) / 1000 };
    },
    // How many of this worker's clients got todo m.id: waits until every live client has it or
    // until wall time m.until.
    async count (m) {
      const live = () => clients.filter((e) => e.alive && e.client.connected).length;
      while ((received.get(m.id) || 0) < live() && wall() < m.until) await sleep(20);
      return { received: received.get(m.id) || 0, live: live(), drops: takeDrops(), alive_by: aliveBy() };
    },
    async alive () {
      return { alive: clients.filter((e) => e.alive && e.client.connected).length, drops: takeDrops(), alive_by: aliveBy() };
    },
    async shutdown () {
      for (const entry of clients) entry.client.close();
      setTimeout(() => process.exit(0), 300);
      return {};
    }
  };

  process.on('message', (m) => {
    const handler = handlers[m.cmd];
    if (!handler) { send({ seq: m.seq, error: `unknown command ${m.cmd}` }); return; }
    handler(m).then((result) => send({ seq: m.seq, result }), (err) => send({ seq: m.seq, error: String(err && err.stack || err) }));
  });
  send({ ready: true });
}

// -- coordinator -----------------------------------------------------------------------------------
class Swarm {
  // workers: how many processes; they get source addresses 127.N.0.2, 127.N.1.2, ... (N: see above)
  constructor (workers) {
    const net = 2 + (process.pid % 250);
    this.workers = [];
    this.seq = 0;
    this.pending = new Map();
    for (let k = 0; k < workers; k++) {
      const child = fork(__filename, ['worker'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      const w = { child, index: k, localAddress: `127.${net}.${k}.2`, exited: false, ready: null };
      w.ready = new Promise((resolve) => {
        child.on('message', (m) => {
          if (m.ready) { resolve(true); return; }
          const p = this.pending.get(m.seq);
          if (!p) return;
          this.pending.delete(m.seq);
          if (m.error) p.reject(new Error(m.error)); else p.resolve(m.result);
        });
      });
      child.on('exit', (code) => {
        w.exited = true;
        for (const [seq, p] of this.pending) {
          if (p.worker === w) { this.pending.delete(seq); p.reject(new Error(`swarm worker ${k} exited (${code})`)); }
        }
      });
      this.workers.push(w);
    }
  }

  async ready (timeoutMs = 20000) {
    const ok = await Promise.race([Promise.all(this.workers.map((w) => w.ready)), sleep(timeoutMs).then(() => false)]);
    if (!ok) throw new Error('swarm workers did not start');
  }

  // Sends `msg` to worker w; rejects after timeoutMs.
  call (w, msg, timeoutMs) {
    if (w.exited) return Promise.reject(new Error(`swarm worker ${w.index} has exited`));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(seq); reject(new Error(`swarm worker ${w.index}: ${msg.cmd} took over ${timeoutMs} ms`)); }, timeoutMs);
      this.pending.set(seq, {
        worker: w,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); }
      });
      w.child.send(Object.assign({ seq }, msg));
    });
  }

  all (msgOf, timeoutMs) {
    return Promise.all(this.workers.map((w) => this.call(w, msgOf(w), timeoutMs)));
  }

  async shutdown () {
    await Promise.race([this.all(() => ({ cmd: 'shutdown' }), 3000).catch(() => null), sleep(3000)]);
    await sleep(400);
    for (const w of this.workers) { if (!w.exited) { try { w.child.kill('SIGKILL'); } catch (e) { /* gone */ } } }
  }
}

if (require.main === module && process.argv[2] === 'worker') runWorker();

module.exports = { Swarm };
