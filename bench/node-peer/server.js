// The concierge subset that switchboard-bench drives (IDENTIFY -> HELLO,
// GROUP_CREATE, SELF_SUBSCRIBE, MESSAGE to a GROUP), on Node's `ws`, written
// the way a Node user would write it: one process, one JSON.stringify per
// message, the same string sent to every subscriber. It is the peer that
// switchboard's figures in docs/performance.md are compared with, so its
// frames are switchboard's byte for byte in size: a group MESSAGE carries the
// document's full `origin` (the sender, and the group with every
// subscriber's uuid), and every reply after IDENTIFY carries the `seq` of the
// frame it answers, counted per connection from 0 as switchboard counts.
//
//   npm install --prefix bench/node-peer && node bench/node-peer/server.js PORT
//
// Listens on 127.0.0.1:PORT (0: any free port, printed), any path (the
// bench uses /ws/concierge).
// Everything else in the concierge document is out of scope: what is not
// in the subset gets the document's STATUS UNSUPORTED.

'use strict';

const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const VERSION = '0.1.0';
const port = Number(process.argv[2] || 8080);

// name -> client; a client is { ws, name, uuid, seq, groups }.
const clients = new Map();
// name -> { name, owner, subscribers: Set of clients }.
const groups = new Map();

// The same shape switchboard renders for a group: name, owner, subscribers.
function groupPayload(group) {
  return {
    name: group.name,
    owner_uuid: group.owner.uuid,
    subscribers: Array.from(group.subscribers, (c) => c.uuid),
  };
}

function send(client, payload) {
  client.ws.send(JSON.stringify(payload));
}

function status(client, code, seq, detail) {
  send(client, { type: 'STATUS', code, ...detail, seq });
}

function identify(ws, payload) {
  if (payload.type !== 'IDENTIFY' || typeof payload.name !== 'string') {
    ws.close(4003, 'identify first');
    return null;
  }
  if (clients.has(payload.name)) {
    ws.close(4005, 'name taken');
    return null;
  }
  const client = {
    ws,
    name: payload.name,
    uuid: crypto.randomUUID(),
    seq: 0,
    groups: new Set(),
  };
  clients.set(client.name, client);
  send(client, { type: 'HELLO', uuid: client.uuid, version: VERSION });
  return client;
}

function handle(client, payload, seq) {
  switch (payload.type) {
    case 'GROUP_CREATE': {
      const existing = groups.get(payload.name);
      if (existing) {
        status(client, 'GROUP_ALREADY_CREATED', seq, groupPayload(existing));
        return;
      }
      const group = { name: payload.name, owner: client, subscribers: new Set() };
      groups.set(group.name, group);
      client.groups.add(group);
      status(client, 'GROUP_CREATED', seq, groupPayload(group));
      return;
    }
    case 'SELF_SUBSCRIBE': {
      const group = groups.get(payload.name);
      if (!group) {
        status(client, 'NO_SUCH_GROUP', seq, { group: payload.name });
        return;
      }
      group.subscribers.add(client);
      client.groups.add(group);
      status(client, 'SUBSCRIBED', seq, groupPayload(group));
      return;
    }
    case 'MESSAGE': {
      const target = payload.target || {};
      const group = target.type === 'GROUP' && groups.get(target.group);
      if (!group) {
        status(client, 'NO_SUCH_GROUP', seq, { group: String(target.group) });
        return;
      }
      // Encoded once, sent to every subscriber (the sender too, if it is one).
      const text = JSON.stringify({
        type: 'MESSAGE',
        origin: { name: client.name, uuid: client.uuid, tags: [], group: groupPayload(group) },
        target: { type: 'GROUP', group: group.name },
        data: payload.data,
      });
      for (const subscriber of group.subscribers) {
        subscriber.ws.send(text);
      }
      status(client, 'MESSAGE_SENT', seq);
      return;
    }
    default:
      status(client, 'UNSUPORTED', seq, { desc: `not in the bench's subset: ${payload.type}` });
  }
}

// A client that leaves leaves its groups; the groups it owns go with it,
// and their other subscribers hear so, as the document says.
function leave(client) {
  clients.delete(client.name);
  for (const group of client.groups) {
    group.subscribers.delete(client);
    if (group.owner !== client) continue;
    groups.delete(group.name);
    for (const subscriber of group.subscribers) {
      subscriber.groups.delete(group);
      send(subscriber, { type: 'STATUS', code: 'UNSUBSCRIBED', ...groupPayload(group) });
    }
  }
}

const server = new WebSocketServer({ host: '127.0.0.1', port });
server.on('connection', (ws) => {
  let client = null;
  ws.on('message', (bytes, isBinary) => {
    if (isBinary) return;
    let payload;
    try {
      payload = JSON.parse(bytes.toString());
    } catch (error) {
      if (!client) ws.close(4002, 'not JSON');
      else status(client, 'PROTOCOL', client.seq++, { desc: error.message });
      return;
    }
    if (!client) {
      client = identify(ws, payload);
      return;
    }
    handle(client, payload, client.seq++);
  });
  ws.on('close', () => {
    if (client) leave(client);
  });
  ws.on('error', () => {}); // a reset client: 'close' follows
});
// The port actually bound (PORT 0 picks a free one), for scripts to read.
server.on('listening', () => {
  const bound = server.address().port;
  console.log(`concierge subset (Node ${process.version}, ws) on ws://127.0.0.1:${bound}/ws/concierge`);
});
