// One benchmark client, socket.io-client 4 (websocket transport only) or the npm primus client with
// primus-emitter; shared by loadgen.js and swarm.js. 127.0.0.0/8 only.
'use strict';
const fs = require('fs');
const { io } = require('socket.io-client');
const Primus = require('primus');

const PrimusSocket = Primus.createSocket({ transformer: 'websockets', plugin: { emitter: require('primus-emitter') } });
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, monotonic, this process only
// ms since the epoch with sub-ms resolution: comparable between processes of this machine
const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const LOOPBACK_URL = /^https?:\/\/(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost)(:\d+)?(\/|$)/;
const LOOPBACK_ADDR = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

class Client {
  // options: url, dialect ('legacy' | 'modern'), transport ('socketio' | 'primus'), auth (object),
  // localAddress (a 127.x.y.z source address; optional)
  constructor (options) {
    if (!LOOPBACK_URL.test(options.url || '')) throw new Error('loopback URLs only');
    if (options.localAddress && !LOOPBACK_ADDR.test(options.localAddress)) throw new Error('loopback source addresses only');
    this.url = options.url;
    this.dialect = options.dialect;
    this.transport = options.transport || 'socketio';
    this.auth = options.auth || {};
    this.localAddress = options.localAddress || null;
    this.connected = false;
    this.sock = null;
    this.listeners = []; // [event, fn]: attached to every socket this client opens
    this.lastError = null;
    this.closing = false;
    this.onDrop = options.onDrop || null; // (transport, reason): a connected socket ended, not by close()
  }

  dropped (s, reason) {
    if (this.sock !== s) return;
    const was = this.connected;
    this.connected = false;
    if (was && !this.closing && this.onDrop) this.onDrop(this.transport, reason);
  }

  // Opens a new socket (the previous one, if any, is closed first); resolves true once connected
  // (socket.io: the CONNECT packet acknowledged; primus: 'open'), false on error or after
  // timeoutMs. Never retries: the client's own reconnection is off on both transports.
  connect (timeoutMs) {
    if (this.sock) this.close();
    this.closing = false;
    return new Promise((resolve) => {
      let settled = false;
      const done = (ok, why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!ok) { this.lastError = why; this.close(); }
        resolve(ok);
      };
      const timer = setTimeout(() => done(false, 'timeout'), timeoutMs);
      if (this.transport === 'primus') {
        const q = new URLSearchParams(Object.entries(this.auth).map(([k, v]) => [k, String(v)]));
        const transport = this.localAddress ? { localAddress: this.localAddress } : {};
        const s = this.sock = new PrimusSocket(`${this.url}?${q}`, { strategy: false, manual: false, timeout: timeoutMs, transport });
        s.on('open', () => { if (this.sock === s) { this.connected = true; done(true); } });
        s.on('end', () => { this.dropped(s, 'end'); done(false, 'end'); });
        s.on('close', () => { this.dropped(s, 'close'); });
        s.on('error', (e) => done(false, `error ${e && (e.code || e.message)}`));
        for (const [event, fn] of this.listeners) s.on(event, fn);
      } else {
        const extra = this.localAddress ? { localAddress: this.localAddress } : {};
        const s = this.sock = io(this.url, { transports: ['websocket'], auth: this.auth, reconnection: false, forceNew: true, timeout: timeoutMs, ...extra });
        s.on('connect', () => { if (this.sock === s) { this.connected = true; done(true); } });
        s.on('disconnect', (reason) => { this.dropped(s, reason); });
        s.on('connect_error', (e) => done(false, `connect_error ${e && e.message}`));
        for (const [event, fn] of this.listeners) s.on(event, fn);
      }
    });
  }

  on (event, fn) {
    this.listeners.push([event, fn]);
    if (this.sock) this.sock.on(event, fn);
  }

  create (service, data) {
    return new Promise((resolve, reject) => {
      const ack = (err, result) => (err ? reject(err) : resolve(result));
      const args = this.dialect === 'modern' ? ['create', service, data, {}, ack] : [`${service}::create`, data, {}, ack];
      if (this.transport === 'primus') this.sock.send(...args);
      else this.sock.emit(...args);
    });
  }

  // create() bounded in time: rejects after timeoutMs
  createWithin (service, data, timeoutMs) {
    return Promise.race([this.create(service, data),
      sleep(timeoutMs).then(() => { throw new Error(`no ack within ${timeoutMs} ms`); })]);
  }

  close () {
    const s = this.sock;
    this.closing = true;
    this.connected = false;
    if (!s) return;
    try { if (this.transport === 'primus') s.end(); else s.close(); } catch (e) { /* gone */ }
  }
}

function stats (values) {
  if (!values.length) return { n: 0, p50: null, p99: null, mean: null, max: null };
  const s = Float64Array.from(values).sort();
  const pick = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: pick(0.5), p99: pick(0.99), mean: sum / s.length, max: s[s.length - 1] };
}

// Threads and VmRSS (KB) of a process from /proc/<pid>/status; null when it is gone (or a zombie:
// dead, not yet reaped by bench.py).
function procStatus (pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/State:\s+[ZX]/.test(text)) return null;
    const rss = /VmRSS:\s+(\d+)/.exec(text);
    const threads = /Threads:\s+(\d+)/.exec(text);
    return { rss_kb: rss ? Number(rss[1]) : null, threads: threads ? Number(threads[1]) : null };
  } catch (e) { return null; }
}

// The soft open-files limit of a process (/proc/<pid>/limits), or null.
function nofile (pid) {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : null;
  } catch (e) { return null; }
}

module.exports = { Client, now, wall, sleep, stats, procStatus, nofile, LOOPBACK_ADDR };
