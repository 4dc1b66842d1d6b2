// Baseline B: Feathers 5 on Node with @feathersjs/socketio, two tiny in-memory todos services.
// `todos` publishes every event to everybody; `ctodos` publishes to everybody filtered by the same
// company check as flask_feathers' `created(data, params)` filter (a channel filter).
// Usage: node feathers5_app.js PORT
'use strict';
const http = require('http');
const { feathers } = require('@feathersjs/feathers');
const socketio = require('@feathersjs/socketio');

let nextId = 1;
class Todos {
  constructor () { this.store = new Map(); }
  async create (data) {
    const todo = { ...data, id: nextId++ };
    this.store.set(todo.id, todo);
    return todo;
  }
}

const app = feathers();
app.configure(socketio((io) => {
  io.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    socket.feathers.user = { companyId: Number(auth.companyId || 1), slow: String(auth.slow) === '1' };
    next();
  });
}));
app.use('todos', new Todos());
app.use('ctodos', new Todos());
app.use('ktodos', new Todos());
app.on('connection', (connection) => {
  app.channel('everybody').join(connection);
  app.channel(`company/${connection.user.companyId}`).join(connection);   // generator pattern
});
app.service('ktodos').publish('created', (data) => app.channel(`company/${data.companyId}`));
app.service('todos').publish('created', () => app.channel('everybody'));
app.service('ctodos').publish('created', (data) =>
  app.channel('everybody').filter((connection) => data.companyId === connection.user.companyId));

const port = Number(process.argv[2]);
const server = http.createServer();
server.on('connection', (sock) => sock.setNoDelay(true));
app.setup(server).then(() => server.listen(port, '127.0.0.1', () => console.log(`READY ${port}`)));
