/*!
 * primus.js: the browser client of flask_feathers' Primus endpoint.
 *
 * Written for this project (no code from the npm primus package); it speaks the
 * wire format of primus 7/8 with the websockets transformer and the
 * primus-emitter plugin:
 *
 *   - every frame is one WebSocket text frame holding JSON.stringify(value);
 *   - the server sends "primus::ping::<ms>" every ping interval, answered with
 *     "primus::pong::<ms>"; no ping for 1.5 intervals means the server is gone;
 *   - "primus::id::" asks for the connection id, "primus::server::close" means
 *     the server closed on purpose and the client must not reconnect;
 *   - emitter packets {type: 0, data: [event, ...args], id?} and acks
 *     {type: 1, id: id, data: [...args]}.
 *
 * ES5, no build step, no dependencies. Defines the global `Primus`.
 *
 * The server fills in the two tokens below when it serves this file.
 */
(function (root) {
  'use strict';

  // Replaced by the server: the WebSocket endpoint's path and its ping
  // interval in ms ("0" turns the dead-server check off).
  var PATHNAME = '__PRIMUS_PATHNAME__';
  var PING_INTERVAL = '__PRIMUS_PING_INTERVAL__';

  var DEFAULT_PATHNAME = '/primus';
  var DEFAULT_PING_INTERVAL = 30000;

  var PREFIX = 'primus::';
  var PING = 'primus::ping::';
  var ID = 'primus::id::';
  var SERVER_CLOSE = 'primus::server::close';

  var EVENT = 0;
  var ACK = 1;

  // Events this library emits itself: an emitter packet from the server
  // carrying one of these names is dropped, as primus-emitter does.
  var RESERVED = {
    'open': 1, 'close': 1, 'end': 1, 'error': 1, 'data': 1,
    'reconnect': 1, 'reconnect scheduled': 1, 'reconnected': 1, 'reconnect failed': 1,
    'reconnect timeout': 1, 'timeout': 1, 'online': 1, 'offline': 1,
    'readyStateChange': 1, 'destroy': 1, 'heartbeat': 1
  };

  var slice = Array.prototype.slice;

  function isArray(value) {
    return Object.prototype.toString.call(value) === '[object Array]';
  }

  function has(obj, key) {
    return Object.prototype.hasOwnProperty.call(obj, key);
  }

  function pingTimeoutFromInterval() {
    var interval = parseInt(PING_INTERVAL, 10);
    // The token is still there when the file is loaded without the server.
    if (isNaN(interval)) interval = DEFAULT_PING_INTERVAL;
    if (interval <= 0) return 0;
    return interval + Math.round(interval / 2);
  }

  function defaultPathname() {
    return PATHNAME.charAt(0) === '/' ? PATHNAME : DEFAULT_PATHNAME;
  }

  // Unique enough to defeat caches, as the `_primuscb` parameter is meant to.
  var cacheBusterSeq = 0;
  function cacheBuster() {
    cacheBusterSeq = (cacheBusterSeq + 1) % 1679616;
    return (+new Date()).toString(36) + '-' + cacheBusterSeq.toString(36) + '-'
      + Math.floor(Math.random() * 1679616).toString(36);
  }

  /**
   * Splits `url` (absolute, protocol-relative, relative or empty) into what
   * the WebSocket URL needs, resolving it against the page's location.
   */
  function parseUrl(url) {
    var loc = root.location || {};
    var base = loc.href || 'http://localhost/';
    var resolved;
    url = url === undefined || url === null ? '' : String(url);
    if (root.document && root.document.createElement) {
      var a = root.document.createElement('a');
      a.href = url || base;
      // Old IE leaves relative anchors unresolved until href is set again.
      if (!a.host) a.href = a.href; // eslint-disable-line no-self-assign
      resolved = { protocol: a.protocol, host: a.host, search: a.search };
    } else if (typeof URL === 'function') {
      var u = new URL(url || base, base);
      resolved = { protocol: u.protocol, host: u.host, search: u.search };
    } else {
      throw new Error('Primus: cannot parse the URL ' + url);
    }
    // Browsers report default ports as part of host in some versions; keep as is.
    return resolved;
  }

  function toWebSocketProtocol(protocol) {
    switch (protocol) {
      case 'https:': case 'wss:': return 'wss:';
      default: return 'ws:';
    }
  }

  function throwLater(error) {
    setTimeout(function () { throw error; }, 0);
  }

  /**
   * A connection to the server.
   *
   *   var primus = new Primus('http://example.com/?token=abc', {
   *     reconnect: { min: 500, max: Infinity, retries: 10, factor: 2 },
   *     timeout: 10000,      // connect timeout in ms, false for none
   *     pingTimeout: 45000,  // default: 1.5 x the server's ping interval
   *     manual: false        // true: call primus.open() yourself
   *   });
   *
   * Only the URL's protocol, host and query string are used: the path is the
   * server's Primus pathname. Events: 'open', 'data' (every message),
   * 'close' (connection lost or ended), 'end' (for good: no reconnect),
   * 'reconnect scheduled', 'reconnect', 'reconnected', 'reconnect failed',
   * 'timeout', 'online', 'offline', 'error', plus every event name the server
   * sends with primus-emitter.
   */
  function Primus(url, options) {
    if (!(this instanceof Primus)) return new Primus(url, options);
    if (typeof url === 'object' && url !== null && options === undefined) {
      options = url;
      url = options.url;
    }
    options = options || {};

    var reconnect = options.reconnect || {};
    this.options = {
      pathname: options.pathname || defaultPathname(),
      timeout: 'timeout' in options ? options.timeout : 10000,
      pingTimeout: 'pingTimeout' in options ? options.pingTimeout : pingTimeoutFromInterval(),
      reconnect: {
        min: 'min' in reconnect ? reconnect.min : 500,
        max: 'max' in reconnect ? reconnect.max : Infinity,
        retries: 'retries' in reconnect ? reconnect.retries : 10,
        factor: 'factor' in reconnect ? reconnect.factor : 2
      },
      // reconnect: false turns reconnection off altogether.
      reconnectEnabled: options.reconnect !== false
    };

    this.url = parseUrl(url);
    this.readyState = Primus.CLOSED;
    this.socket = null;

    this._events = {};
    this._buffer = [];          // frames written before the connection opened
    this._acks = {};            // ack id -> callback, for send() with a callback
    this._ackId = 1;
    this._idCallbacks = [];
    this._timers = {};
    this._attempt = 0;          // > 0 while reconnecting
    this._ended = false;        // end() was called or the server closed for good

    if (!options.manual) {
      var self = this;
      // Give the caller the current tick to attach listeners, like Primus.
      this._setTimer('open', function () { self.open(); }, 0);
    }
  }

  Primus.CLOSED = 1;
  Primus.OPENING = 2;
  Primus.OPEN = 3;

  var proto = Primus.prototype;

  // -- events ----------------------------------------------------------------

  /** Add `fn` as a listener of `event`. */
  proto.on = proto.addListener = function on(event, fn, context) {
    if (typeof fn !== 'function') throw new TypeError('Primus: a listener must be a function');
    (this._events[event] || (this._events[event] = [])).push({ fn: fn, context: context, once: false });
    return this;
  };

  /** Add `fn` for the next `event` only. */
  proto.once = function once(event, fn, context) {
    this.on(event, fn, context);
    var list = this._events[event];
    list[list.length - 1].once = true;
    return this;
  };

  /** Remove `fn` from `event`, every listener of `event`, or every listener. */
  proto.off = proto.removeListener = function off(event, fn) {
    if (event === undefined) {
      this._events = {};
      return this;
    }
    if (!has(this._events, event)) return this;
    if (fn === undefined) {
      delete this._events[event];
      return this;
    }
    var kept = [];
    var list = this._events[event];
    for (var i = 0; i < list.length; i++) {
      if (list[i].fn !== fn) kept.push(list[i]);
    }
    if (kept.length) this._events[event] = kept;
    else delete this._events[event];
    return this;
  };

  proto.removeAllListeners = function removeAllListeners(event) {
    return this.off(event);
  };

  /** The listener functions of `event`. */
  proto.listeners = function listeners(event) {
    var list = has(this._events, event) ? this._events[event] : [];
    var fns = [];
    for (var i = 0; i < list.length; i++) fns.push(list[i].fn);
    return fns;
  };

  /**
   * Call the listeners of `event` with the remaining arguments. A listener
   * that throws does not stop the others nor this library: its error is
   * rethrown on a later tick so it still shows up in the console.
   */
  proto.emit = function emit(event) {
    if (!has(this._events, event)) return false;
    var args = slice.call(arguments, 1);
    var list = this._events[event].slice();
    for (var i = 0; i < list.length; i++) {
      if (list[i].once) this.off(event, list[i].fn);
    }
    for (var j = 0; j < list.length; j++) {
      try {
        list[j].fn.apply(list[j].context === undefined ? this : list[j].context, args);
      } catch (error) {
        throwLater(error);
      }
    }
    return true;
  };

  /** True for names the library emits itself (see RESERVED). */
  proto.reserved = function reserved(event) {
    return has(RESERVED, event) || /^(incoming|outgoing)::/.test(event);
  };

  // -- timers ----------------------------------------------------------------

  proto._setTimer = function (name, fn, ms) {
    this._clearTimer(name);
    var timers = this._timers;
    timers[name] = setTimeout(function () {
      delete timers[name];
      fn();
    }, ms);
  };

  proto._clearTimer = function (name) {
    if (has(this._timers, name)) {
      clearTimeout(this._timers[name]);
      delete this._timers[name];
    }
  };

  proto._clearTimers = function () {
    for (var name in this._timers) {
      if (has(this._timers, name)) clearTimeout(this._timers[name]);
    }
    this._timers = {};
  };

  // -- connection ------------------------------------------------------------

  /** The WebSocket URL: the server's pathname, the page URL's query and `_primuscb`. */
  proto.uri = function uri() {
    var query = this.url.search ? this.url.search.slice(1) : '';
    query = (query ? query + '&' : '') + '_primuscb=' + cacheBuster();
    return toWebSocketProtocol(this.url.protocol) + '//' + this.url.host
      + this.options.pathname + '?' + query;
  };

  /** Connect (done automatically unless `options.manual`). */
  proto.open = function open() {
    this._clearTimer('open');
    if (this.readyState !== Primus.CLOSED) return this;
    this._ended = false;
    var self = this;
    var socket;
    this.readyState = Primus.OPENING;
    this.emit('readyStateChange', 'opening');
    try {
      socket = new root.WebSocket(this.uri());
    } catch (error) {
      // A malformed URL; nothing a retry would change.
      this.readyState = Primus.CLOSED;
      this._ended = true;
      this.emit('error', error);
      this.emit('end');
      return this;
    }
    this.socket = socket;

    socket.onopen = function () { if (self.socket === socket) self._onOpen(); };
    socket.onmessage = function (message) { if (self.socket === socket) self._onMessage(message.data); };
    socket.onerror = function () {
      // Always followed by onclose, which does the work.
      if (self.socket === socket && self._attempt === 0 && self.listeners('error').length) {
        self.emit('error', new Error('Primus: WebSocket error'));
      }
    };
    socket.onclose = function (event) { if (self.socket === socket) self._onClose(event); };

    // Every attempt gets the connect timeout: a half-open TCP connection
    // would otherwise stall the reconnect loop for good.
    if (this.options.timeout) {
      this._setTimer('connect', function () {
        if (self.readyState !== Primus.OPENING) return;
        self.emit('timeout');
        self._abandonSocket();
        self._lost();
      }, this.options.timeout);
    }
    return this;
  };

  proto._onOpen = function () {
    this._clearTimer('connect');
    var reconnected = this._attempt > 0;
    var attempt = this._attempt;
    this._attempt = 0;
    this.readyState = Primus.OPEN;
    this.emit('readyStateChange', 'open');
    this._heartbeat();

    // Flush first: a listener of 'reconnected' or 'open' that sends must
    // not overtake what was queued before.
    var queued = this._buffer;
    this._buffer = [];
    for (var i = 0; i < queued.length; i++) this._rawSend(queued[i]);

    if (reconnected) this.emit('reconnected', { attempt: attempt });
    this.emit('online');
    this.emit('open');
  };

  /** Restart the dead-server timer; called on open and on every ping. */
  proto._heartbeat = function () {
    var self = this;
    if (!this.options.pingTimeout) return;
    this._setTimer('heartbeat', function () {
      if (self.readyState !== Primus.OPEN) return;
      self.emit('offline');
      self._abandonSocket();
      self._lost();
    }, this.options.pingTimeout);
  };

  proto._onMessage = function (raw) {
    var data;
    if (typeof raw !== 'string') return; // the protocol is text only
    try {
      data = JSON.parse(raw);
    } catch (error) {
      if (this.listeners('error').length) this.emit('error', error);
      return;
    }
    if (typeof data === 'string' && data.indexOf(PREFIX) === 0 && this._protocol(data)) return;
    this.emit('data', data, raw);
    this._emitter(data);
  };

  /** Handles a primus:: control string; false when it is not one we know. */
  proto._protocol = function (message) {
    if (message.indexOf(PING) === 0) {
      this._heartbeat();
      this._rawSend(JSON.stringify('primus::pong::' + message.slice(PING.length)));
      this.emit('heartbeat');
      return true;
    }
    if (message === SERVER_CLOSE) {
      // The server closes on purpose: stop here, no reconnect.
      this.end();
      return true;
    }
    if (message.indexOf(ID) === 0) {
      var callbacks = this._idCallbacks;
      this._idCallbacks = [];
      for (var i = 0; i < callbacks.length; i++) callbacks[i](message.slice(ID.length));
      return true;
    }
    return false;
  };

  /** Dispatch a primus-emitter packet: an event (maybe wanting an ack) or an ack. */
  proto._emitter = function (packet) {
    if (!packet || typeof packet !== 'object' || !isArray(packet.data)) return;
    if (packet.id !== undefined && packet.id !== null && typeof packet.id !== 'number') return;
    var args = packet.data.slice();
    if (packet.type === EVENT) {
      if (typeof args[0] !== 'string' || this.reserved(args[0])) return;
      if (packet.id) args.push(this._ackFunction(packet.id));
      this.emit.apply(this, args);
    } else if (packet.type === ACK && packet.id) {
      var ack = this._acks[packet.id];
      if (typeof ack !== 'function') return;
      delete this._acks[packet.id];
      try {
        ack.apply(this, args);
      } catch (error) {
        throwLater(error);
      }
    }
  };

  proto._ackFunction = function (id) {
    var self = this;
    var done = false;
    return function ack() {
      if (done) return; // a second call would answer twice
      done = true;
      self.write({ type: ACK, id: id, data: slice.call(arguments) });
    };
  };

  proto._onClose = function () {
    this._abandonSocket();
    if (this._ended) return;
    this._lost();
  };

  /** Forget the current socket; its late events are ignored from here on. */
  proto._abandonSocket = function () {
    var socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    try {
      if (socket.readyState === 0 || socket.readyState === 1) socket.close();
    } catch (error) { /* already closing */ }
  };

  /** The connection dropped or never came up: tell, then try again or give up. */
  proto._lost = function () {
    var wasOpen = this.readyState === Primus.OPEN;
    this._clearTimers();
    this.readyState = Primus.CLOSED;
    this.emit('readyStateChange', 'closed');
    if (wasOpen) this.emit('close');
    this._scheduleReconnect();
  };

  proto._scheduleReconnect = function () {
    var opts = this.options.reconnect;
    if (!this.options.reconnectEnabled || this._attempt >= opts.retries) {
      var attempts = this._attempt;
      this._attempt = 0;
      this._ended = true;
      this._buffer = [];
      if (this.options.reconnectEnabled) {
        this.emit('reconnect failed', new Error('Primus: gave up after ' + attempts + ' reconnect attempts'),
          { attempt: attempts, retries: opts.retries });
      }
      this.emit('end');
      return;
    }
    this._attempt += 1;
    // Exponential backoff with jitter: between 1x and 2x the base delay,
    // within [min, max], so many clients of one restarted server spread out.
    var base = opts.min * Math.pow(opts.factor, this._attempt - 1);
    var delay = Math.round(Math.min(opts.max, Math.max(opts.min, base * (1 + Math.random()))));
    var status = { attempt: this._attempt, retries: opts.retries, scheduled: delay };
    var self = this;
    this.emit('reconnect scheduled', status);
    this._setTimer('reconnect', function () {
      self.emit('reconnect', status);
      // A 'reconnect' listener may have called end().
      if (!self._ended) self.open();
    }, delay);
  };

  // -- writing ---------------------------------------------------------------

  proto._rawSend = function (frame) {
    try {
      this.socket.send(frame);
    } catch (error) {
      if (this.listeners('error').length) this.emit('error', error);
    }
  };

  /**
   * Send `data` (any JSON value). Before the connection opens, and while
   * reconnecting, it is queued and sent in order on open. Returns false once
   * the connection has ended.
   */
  proto.write = function write(data) {
    if (this._ended) return false;
    var frame = JSON.stringify(data);
    if (frame === undefined) frame = 'null'; // JSON.stringify(undefined)
    if (this.readyState === Primus.OPEN) this._rawSend(frame);
    else this._buffer.push(frame);
    return true;
  };

  /**
   * primus-emitter's send: `primus.send('todos::create', data, query, ack)`.
   * When the last argument is a function it is called with the arguments of
   * the server's acknowledgement.
   */
  proto.send = function send(event) {
    var args = slice.call(arguments);
    var packet = { type: EVENT, data: args };
    if (typeof args[args.length - 1] === 'function') {
      var id = this._ackId++;
      this._acks[id] = args.pop();
      packet.id = id;
    }
    return this.write(packet);
  };

  /** Ask the server for this connection's id: `primus.id(function (id) {...})`. */
  proto.id = function id(fn) {
    this._idCallbacks.push(fn);
    this.write(ID);
    return this;
  };

  /**
   * Close for good: no reconnect. `data`, when given, is written first.
   * Emits 'close' (when a connection was open or opening) and 'end'.
   */
  proto.end = function end(data) {
    if (this._ended) return this;
    if (data !== undefined) this.write(data);
    var readyState = this.readyState;
    this._ended = true;
    this._attempt = 0;
    this._buffer = [];
    this._clearTimers();
    this._abandonSocket();
    this.readyState = Primus.CLOSED;
    if (readyState !== Primus.CLOSED) {
      this.emit('readyStateChange', 'closed');
      this.emit('close');
    }
    this.emit('end');
    return this;
  };

  /** end() and drop every listener. */
  proto.destroy = function destroy() {
    this.end();
    this.emit('destroy');
    this.off();
    this._acks = {};
    this._idCallbacks = [];
    return true;
  };

  root.Primus = Primus;
  if (typeof module === 'object' && module && module.exports) module.exports = Primus;
}(typeof window !== 'undefined' ? window : typeof self !== 'undefined' ? self : this));
