// The demo page's script: one small adapter per transport, then the todo list.
// No build step; the Primus client comes from /primus/primus.js, socket.io-client from the app's
// own copy (/socket.io-client.js, installed from npm by scripts/demo).
(function () {
  'use strict';

  var body = document.body;
  var transport = body.dataset.transport;
  var me = JSON.parse(body.dataset.user);
  var names = JSON.parse(body.dataset.names || '{}');  // username -> name, for the authors
  var $ = function (id) { return document.getElementById(id); };
  var list = $('todos');
  var todos = {};  // id -> todo, what the list shows

  // What happened, for the browser tests (and the curious: open the console).
  var demo = window.demo = { transport: transport, events: [], connected: false };

  // -- transports: call(method, args) -> Promise, on(event, fn), signal(event, data) ------------
  function primusClient() {
    var primus = new Primus(location.origin, { reconnect: { min: 500, max: 5000, retries: 20 } });
    demo.primus = primus;
    primus.on('open', function () { connected(); });
    primus.on('reconnect scheduled', function () { status('reconnecting…', 'offline'); });
    primus.on('end', function () { status('offline', 'offline'); });
    return {
      call: function (method, args) {
        return new Promise(function (resolve, reject) {
          primus.send.apply(primus, ['todos::' + method].concat(args, [function (error, result) {
            if (error) { reject(error); } else { resolve(result); }
          }]));
        });
      },
      on: function (event, fn) { primus.on(event, fn); },
      signal: function (event, data) { primus.send(event, data); }
    };
  }

  function socketioClient() {
    var socket = io();
    demo.socket = socket;
    socket.on('connect', function () { connected(); });
    socket.on('disconnect', function () { status('reconnecting…', 'offline'); });
    socket.on('connect_error', function (err) { status('offline: ' + err.message, 'offline'); });
    return {
      call: function (method, args) {
        return new Promise(function (resolve, reject) {
          socket.emit.apply(socket, ['todos::' + method].concat(args, [function (error, result) {
            if (error) { reject(error); } else { resolve(result); }
          }]));
        });
      },
      on: function (event, fn) { socket.on(event, fn); },
      signal: function (event, data) { socket.emit(event, data); }
    };
  }

  function status(text, kind) {
    var el = $('status');
    el.textContent = text;
    el.className = 'status' + (kind ? ' ' + kind : '');
    demo.connected = kind === 'live';
  }

  function showError(error) {
    var el = $('error');
    el.textContent = (error && error.message) || String(error);
    el.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(function () { el.hidden = true; }, 6000);
  }

  // -- the list ---------------------------------------------------------------------------------
  function renderTodo(todo) {
    var li = document.createElement('li');
    li.className = 'todo' + (todo.done ? ' done' : '');
    li.dataset.testid = 'todo';
    li.dataset.id = todo.id;
    var box = document.createElement('input');
    box.type = 'checkbox';
    box.id = 'todo-' + todo.id;
    box.checked = !!todo.done;
    box.dataset.testid = 'todo-toggle';
    var label = document.createElement('label');
    label.htmlFor = box.id;
    label.textContent = todo.text;
    label.dataset.testid = 'todo-text';
    li.appendChild(box);
    li.appendChild(label);
    if (todo.author) {
      var author = document.createElement('span');
      author.className = 'author';
      author.dataset.author = todo.author;
      author.textContent = names[todo.author] || todo.author;
      li.appendChild(author);
    }
    var del = document.createElement('button');
    del.type = 'button';
    del.className = 'delete';
    del.textContent = '×';
    del.dataset.testid = 'todo-delete';
    del.setAttribute('aria-label', 'Delete “' + todo.text + '”');
    li.appendChild(del);
    return li;
  }

  function render() {
    var ids = Object.keys(todos).map(Number).sort(function (a, b) { return a - b; });
    var focused = document.activeElement && document.activeElement.id;
    list.replaceChildren.apply(list, ids.map(function (id) { return renderTodo(todos[id]); }));
    if (focused && $(focused)) { $(focused).focus(); }
    var done = ids.filter(function (id) { return todos[id].done; }).length;
    $('empty').hidden = ids.length > 0;
    $('counts').textContent = ids.length ? (ids.length - done) + ' open · ' + done + ' done' : '';
    showNews(ids.length - done);
  }

  // The welcome line (the server's `news` on connect) counts the open todos: it follows the
  // list from then on instead of keeping the count of the moment it arrived.
  var news = null;
  function showNews(open) {
    if (!news) { return; }
    var el = $('news');
    if (news.hello && news.company && typeof news.open === 'number') {
      el.textContent = 'Welcome, ' + news.hello + '! ' + news.company + ' has ' + open +
        ' open todo' + (open === 1 ? '' : 's') + '.';
    } else {
      el.textContent = news.message || JSON.stringify(news);
    }
    el.hidden = false;
  }
  function openCount() {
    return Object.keys(todos).filter(function (id) { return !todos[id].done; }).length;
  }

  function upsert(todo) { todos[todo.id] = todo; render(); }
  function drop(todo) { delete todos[todo.id]; render(); }

  function load() {
    return client.call('find', [{}]).then(function (all) {
      todos = {};
      all.forEach(function (todo) { todos[todo.id] = todo; });
      render();
    });
  }

  function connected() {
    // (Re)load on every connect: events missed while offline are not replayed.
    load().then(function () { status('live', 'live'); }, showError);
  }

  // -- wiring -----------------------------------------------------------------------------------
  var library = transport === 'socketio' ? window.io : window.Primus;
  if (typeof library !== 'function') {
    // The client script did not load (blocked, offline CDN, not installed): say so, stay put.
    status('offline', 'offline');
    var box = $('error');
    box.textContent = 'The ' + (transport === 'socketio' ? 'socket.io-client' : 'Primus') +
      ' script could not be loaded, so this page cannot go live. Reload, or try the other ' +
      'transport.';
    box.hidden = false;
    demo.loadError = true;
    return;
  }
  var client = transport === 'socketio' ? socketioClient() : primusClient();

  function record(event, handler) {
    client.on(event, function (data) {
      demo.events.push({ event: event, id: data && data.id, text: data && data.text, data: data });
      handler(data);
    });
  }
  record('todos created', upsert);
  record('todos updated', upsert);
  record('todos patched', upsert);
  record('todos removed', drop);
  record('news', function (data) {
    news = data;
    // until the list is loaded over the socket, the server's own count is the better one
    if (demo.connected) { showNews(openCount()); } else {
      $('news').textContent = data.message || JSON.stringify(data);
      $('news').hidden = false;
    }
  });

  var typists = {};
  record('todos typing', function (who) {
    clearTimeout(typists[who.name]);
    if (who.typing) {
      typists[who.name] = setTimeout(function () { delete typists[who.name]; showTypists(); }, 4000);
    } else {
      delete typists[who.name];
    }
    showTypists();
  });
  function showTypists() {
    var names = Object.keys(typists);
    $('typing').textContent = names.length === 0 ? '' :
      names.join(' and ') + (names.length === 1 ? ' is' : ' are') + ' typing…';
  }

  var lastTyping = 0;
  var input = $('new-todo');
  input.addEventListener('input', function () {
    var now = Date.now();
    if (input.value && now - lastTyping > 1500) {
      lastTyping = now;
      client.signal('typing', true);
    }
  });
  function stoppedTyping() {
    if (lastTyping) { lastTyping = 0; client.signal('typing', false); }
  }
  input.addEventListener('blur', stoppedTyping);

  // A custom service method: removes the company's done todos (their removed events update
  // every tab of the company, this one included).
  $('clear').addEventListener('click', function () {
    client.call('clear_completed', [{}, {}]).then(function (removed) {
      removed.forEach(drop);
    }, showError);
  });

  $('add').addEventListener('submit', function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) {
      showError('A todo needs some text: an empty one is not added.');
      input.focus();
      return;
    }
    input.value = '';
    stoppedTyping();
    client.call('create', [{ text: text }, {}]).then(upsert, function (error) {
      input.value = text;
      showError(error);
    });
  });

  list.addEventListener('change', function (event) {
    var box = event.target;
    if (box.dataset.testid !== 'todo-toggle') { return; }
    var id = Number(box.closest('li').dataset.id);
    client.call('patch', [id, { done: box.checked }, {}]).then(upsert, function (error) {
      box.checked = !box.checked;
      showError(error);
    });
  });

  list.addEventListener('click', function (event) {
    var button = event.target.closest('[data-testid="todo-delete"]');
    if (!button) { return; }
    var id = Number(button.closest('li').dataset.id);
    client.call('remove', [id, {}]).then(drop, showError);
  });

  // The server rendered the list already; keep it until the socket's own find replaces it.
  Array.prototype.forEach.call(list.children, function (li) {
    todos[li.dataset.id] = {
      id: Number(li.dataset.id), text: li.querySelector('label').textContent,
      done: li.querySelector('input').checked,
      author: (li.querySelector('.author') || { dataset: {} }).dataset.author
    };
  });
  render();
  demo.me = me;
})();
