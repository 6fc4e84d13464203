// The shared editor demo. It gets a token from /demo/token, joins the
// blazing document named by ?doc= at /ws/blazing (token and computer id as
// query parameters, since browsers cannot set handshake headers), and
// speaks gzip-compressed JSON in binary frames. Offsets count Unicode
// scalar values, as the server's do; JavaScript strings count UTF-16 units,
// so every offset goes through Array.from.
//
// Editing model: the classic central-server operational-transformation
// client (Jupiter, ot.js), on switchboard's revisions (docs/revisions.md, "Blazing
// revisions"). The server numbers the writes it applies; this page sends
// each write with the revision its copy had, and the server transforms it
// against whatever it applied since.
// - `server` is the server's text at revision `serverRev`;
// - one write is in flight at a time (`inflight`); what is typed meanwhile
//   waits in `buffer` (typing at one place merges into one write);
// - someone else's write is transformed against the in-flight and buffered
//   writes before it reaches the textarea, so what the user typed stays
//   where they typed it; `transform` below is the server's
//   (src/router/document/transform.rs), rule for rule.
// Names come from a channels listener beside the document, whose presence
// carries each user's id and name (blazing messages carry only ids).
"use strict";

const params = new URLSearchParams(location.search);
const doc = /^[A-Za-z0-9_.~-]{1,64}$/.test(params.get("doc") || "") ? params.get("doc") : "demo";
const askedName = (params.get("name") || "").trim();
const RETRY_MS = 2000;

const textarea = document.getElementById("text");
const mirror = document.getElementById("mirror");
const stateLabel = document.getElementById("state");

let me = null;            // {sub, name, token} from /demo/token
let server = "";          // the server's text at serverRev
let serverRev = 0;        // the writes the server has applied, as far as we know
let inflight = null;      // our write the server has not echoed: {start, end, text}
let buffer = [];          // our writes since, each on the text after the one before
let shown = "";           // the textarea's text as of the last input we read
let cursors = new Map();  // user id -> {offset, selection}, in `server`
const names = new Map();  // user id -> display name
let blazing = null;       // the document's socket
let sockets = [];         // this connection's blazing and channels sockets

// --- Text in Unicode scalar values --------------------------------------

const scalars = (text) => Array.from(text);

// The range a write replaces, as [start, end], clamped to the text.
function range(length, offset, selection) {
  const clamp = (n) => Math.max(0, Math.min(length, n));
  const a = clamp(offset), b = clamp(a + selection);
  return [Math.min(a, b), Math.max(a, b)];
}

// `text` with [start, end) replaced by `insert`.
function splice(text, start, end, insert) {
  const cs = scalars(text);
  return cs.slice(0, start).join("") + insert + cs.slice(end).join("");
}

// The single replacement turning `before` into `after`: common prefix and
// suffix kept, the middle replaced. `caret` (where the user's caret is
// now) settles an ambiguous place, as when typing "a" into "aa".
function diff(before, after, caret = Infinity) {
  const a = scalars(before), b = scalars(after);
  let start = 0;
  const limit = Math.min(a.length, b.length, caret);
  while (start < limit && a[start] === b[start]) start++;
  let tail = 0;
  while (tail < a.length - start && tail < b.length - start &&
         a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  return { start, end: a.length - tail, text: b.slice(start, b.length - tail).join("") };
}

const written = (op) => scalars(op.text).length;
const after = (op, p) => p + written(op) - (op.end - op.start);

// Two writes made on one text, `earlier` applied first by the server:
// returns [later', earlier'], each to apply after the other one.
function transform(later, earlier) {
  const x = later, y = earlier, xl = written(x), yl = written(y);
  const op = (start, end, text) => ({ start, end: Math.max(start, end), text });
  if (x.start < y.start && y.start < x.end) {
    // The earlier text was typed inside what the later write deletes.
    return [op(x.start, after(y, Math.max(x.end, y.end)), x.text),
            op(x.start + xl, x.start + xl + Math.max(0, y.end - x.end), "")];
  }
  if (y.start < x.start && x.start < y.end) {
    return [op(y.start + yl, y.start + yl + Math.max(0, x.end - y.end), ""),
            op(y.start, after(x, Math.max(x.end, y.end)), y.text)];
  }
  if (x.start === y.start && x.end > y.end) {
    return [op(y.start + yl, y.start + yl + (x.end - y.end), x.text), op(y.start, y.start, y.text)];
  }
  if (x.start === y.start) {
    return y.end > x.end
      ? [op(y.start, y.start, x.text), op(y.start + xl, y.start + xl + (y.end - x.end), y.text)]
      : [op(y.start + yl, y.start + yl, x.text), op(y.start, y.start, y.text)];
  }
  if (x.end <= y.start) return [x, op(after(x, y.start), after(x, y.end), y.text)];
  return [op(after(y, x.start), after(y, x.end), x.text), y];
}

// `second` (made on the text after `first`) folded into `first`, when it
// lies within the text `first` wrote; else null.
function merge(first, second) {
  const end = first.start + written(first);
  if (second.start < first.start || second.end > end) return null;
  const text = splice(first.text, second.start - first.start, second.end - first.start, second.text);
  return { start: first.start, end: first.end, text };
}

// Where position `x` lands after `change` ({start, end, text}) is applied:
// before it, unmoved; after it, shifted; inside the replaced part, at the
// end of the inserted text. At `change.start` itself it stays before the
// inserted text, unless `tieAfter`.
function mapPoint(x, change, tieAfter = false) {
  const inserted = scalars(change.text).length;
  if (x < change.start || (x === change.start && !tieAfter)) return x;
  if (x >= change.end) return x + inserted - (change.end - change.start);
  return change.start + inserted;
}

const toScalars = (text, units) => scalars(text.slice(0, units)).length;
const toUnits = (text, n) => scalars(text).slice(0, n).join("").length;

// --- gzip JSON in binary frames -----------------------------------------

async function gzip(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

// Compression is asynchronous: these chains keep messages in order. A
// failed link is reported and the chain goes on.
let outbox = Promise.resolve();
let inbox = Promise.resolve();
const report = (error) => console.error("editor:", error);

function send(type, payload) {
  const json = JSON.stringify({ type, payload });
  const socket = blazing;
  outbox = outbox.then(() => gzip(json)).then((bytes) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(bytes);
  }).catch(report);
}

// --- The connection -------------------------------------------------------

async function start() {
  // The token grants this document and its people channel, nothing more.
  const answer = await fetch("/demo/token?name=" + encodeURIComponent(askedName) + "&doc=" + encodeURIComponent(doc));
  if (answer.status === 404) return needsDemo();
  if (!answer.ok) throw new Error("/demo/token answered " + answer.status);
  me = await answer.json();
  document.getElementById("name").value = me.name;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const query = "?token=" + encodeURIComponent(me.token) + "&computer=" + encodeURIComponent(doc);
  blazing = new WebSocket(scheme + location.host + "/ws/blazing" + query);
  blazing.binaryType = "arraybuffer";
  const presence = "?user=" + encodeURIComponent(me.sub) + "&name=" + encodeURIComponent(me.name) +
    "&token=" + encodeURIComponent(me.token);
  const people = new WebSocket(scheme + location.host + "/editor." + doc + "/listen" + presence);
  sockets = [blazing, people];
  blazing.onmessage = (event) => {
    inbox = inbox.then(() => gunzip(event.data)).then((json) => onBlazing(JSON.parse(json))).catch(report);
  };
  people.onmessage = (event) => onPeople(people, JSON.parse(event.data));
  for (const socket of sockets) socket.onclose = (event) => restart(event);
}

// Either socket closing ends both; a new token and a fresh sync follow.
function restart(event) {
  if (!sockets.length) return;
  for (const socket of sockets) { socket.onclose = null; socket.close(); }
  sockets = [];
  textarea.disabled = true;
  stateLabel.className = "state";
  stateLabel.textContent = "disconnected (" + event.code + (event.reason ? ": " + event.reason : "") + "), retrying…";
  setTimeout(() => start().catch(failed), RETRY_MS);
}

function failed(error) {
  stateLabel.textContent = "error: " + error.message + ", retrying…";
  setTimeout(() => start().catch(failed), RETRY_MS);
}

function needsDemo() {
  const notice = document.getElementById("notice");
  notice.hidden = false;
  notice.innerHTML = "This server runs without <code>--demo</code>, so it gives out no tokens " +
    "and the editor cannot join. Start it with <code>switchboard --demo</code> " +
    "(never in production: anyone could get a token).";
  stateLabel.textContent = "needs --demo";
}

// --- Blazing messages -----------------------------------------------------

async function onBlazing({ type, payload }) {
  switch (type) {
    case "sync": return onSync(payload);
    case "write": return onWrite(payload);
    case "move":
      cursors.set(payload.actioner, { offset: payload.offset, selection: payload.selection });
      return draw();
    case "usrupd":
      if (payload.type) cursors.set(payload.actioner, cursors.get(payload.actioner) || { offset: 0, selection: 0 });
      else cursors.delete(payload.actioner);
      return draw();
  }
}

async function onSync(payload) {
  const bytes = Uint8Array.from(atob(payload.document), (c) => c.charCodeAt(0));
  server = await gunzip(bytes);
  serverRev = payload.rev || 0;
  inflight = null;
  buffer = [];
  cursors = new Map(Object.entries(payload.users).map(([id, offset]) => [id, { offset, selection: 0 }]));
  textarea.value = shown = server;
  textarea.disabled = false;
  stateLabel.textContent = "live: " + doc;
  stateLabel.className = "state live";
  draw();
}

function onWrite(write) {
  const [start, end] = range(scalars(server).length, write.offset, write.selection);
  const change = { start, end, text: write.text };
  server = splice(server, start, end, write.text);
  serverRev = write.rev;
  moveCursors(write.actioner, change, write.selection);
  if (write.actioner === me.sub && inflight) {
    inflight = null; // our echo: the server applied what we sent
  } else {
    receive(change);
  }
  flush();
  draw();
}

// Others' cursors after a write shift with it; the writer's moves past the
// written text (or before it, for a selection to the left).
function moveCursors(writer, change, selection) {
  for (const [id, cursor] of cursors) {
    if (id === writer) continue;
    const [a, b] = range(Infinity, cursor.offset, cursor.selection);
    const from = mapPoint(a, change), to = mapPoint(b, change);
    cursors.set(id, cursor.selection < 0 ? { offset: to, selection: from - to } : { offset: from, selection: to - from });
  }
  const length = scalars(change.text).length;
  cursors.set(writer, { offset: selection < 0 ? change.start : change.start + length, selection: 0 });
}

// Someone else's write, applied by the server before ours: transformed
// against our in-flight and buffered writes (which become what the server
// will make of them), then applied to what the user sees, caret kept.
function receive(change) {
  readInput();
  let theirs = change;
  if (inflight) [inflight, theirs] = transform(inflight, theirs);
  buffer = buffer.map((mine) => { let next; [next, theirs] = transform(mine, theirs); return next; });
  const view = textarea.value;
  const caretFrom = mapPoint(toScalars(view, textarea.selectionStart), theirs);
  const caretTo = mapPoint(toScalars(view, textarea.selectionEnd), theirs);
  const next = splice(view, theirs.start, theirs.end, theirs.text);
  shown = next;
  if (next === view) return;
  const direction = textarea.selectionDirection;
  textarea.value = next;
  textarea.setSelectionRange(toUnits(next, caretFrom), toUnits(next, caretTo), direction);
}

// What the user typed since the last look, into the buffer.
function readInput() {
  const view = textarea.value;
  if (view === shown) return;
  const change = diff(shown, view, toScalars(view, textarea.selectionEnd));
  shown = view;
  const merged = buffer.length ? merge(buffer[buffer.length - 1], change) : null;
  if (merged) buffer[buffer.length - 1] = merged;
  else buffer.push(change);
}

// Sends the next buffered write if nothing is in flight; with nothing left
// to send, tells where the caret is.
function flush() {
  if (!me || textarea.disabled) return;
  readInput();
  if (inflight) return;
  if (buffer.length) {
    inflight = buffer.shift();
    send("write", { offset: inflight.start, selection: inflight.end - inflight.start, text: inflight.text, rev: serverRev });
    return;
  }
  const caret = caretNow(textarea.value);
  const known = cursors.get(me.sub);
  if (!known || known.offset !== caret.offset || known.selection !== caret.selection) {
    cursors.set(me.sub, caret);
    send("move", { ...caret, rev: serverRev });
  }
  draw();
}

// The textarea's selection as a blazing cursor: the offset is where the
// caret is, and the selection reaches from it to the anchor, to the left
// (negative) when the user selected forwards.
function caretNow(view) {
  const from = toScalars(view, textarea.selectionStart), to = toScalars(view, textarea.selectionEnd);
  return textarea.selectionDirection === "backward"
    ? { offset: from, selection: to - from }
    : { offset: to, selection: from - to };
}

// --- Names, from the channel beside the document ---------------------------

const members = new Map(); // channels client id -> user id

function onPeople(socket, frame) {
  const seen = (clientID, presence) => {
    if (!presence || !presence.user) return;
    members.set(clientID, presence.user);
    names.set(presence.user, presence.name || presence.user.slice(0, 8));
  };
  switch (frame.type) {
    case "PING": return socket.send(JSON.stringify({ type: "PONG" }));
    case "CONNECTED":
      for (const member of frame.payload.members) seen(member.clientID, member.presence);
      break;
    case "PRESENCE:JOINED":
    case "PRESENCE:UPDATED":
      seen(frame.payload.clientID, frame.payload.presence);
      break;
  }
  draw();
}

// --- Drawing ----------------------------------------------------------------

// A color per user, the same in every tab.
function color(id) {
  let hash = 0;
  for (const c of id) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return "hsl(" + (hash % 360) + " 70% 45%)";
}

const nameOf = (id) => (me && id === me.sub ? me.name : names.get(id) || id.slice(0, 8));

let drawing = false;
function draw() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => { drawing = false; drawPeople(); drawCursors(); });
}

function drawPeople() {
  const list = document.getElementById("people");
  list.replaceChildren();
  for (const id of cursors.keys()) {
    const item = document.createElement("li");
    item.style.setProperty("--c", color(id));
    item.textContent = nameOf(id) + (me && id === me.sub ? " (you)" : "");
    if (me && id === me.sub) item.className = "me";
    list.append(item);
  }
}

// Rebuilds the mirror: the textarea's text, transparent, cut at every
// other user's caret and selection edge; carets carry the user's name.
function drawCursors() {
  const view = textarea.value, text = scalars(view);
  const mine = diff(server, view);
  const marks = [];
  for (const [id, cursor] of cursors) {
    if (me && id === me.sub) continue;
    const [a, b] = range(scalars(server).length, cursor.offset, cursor.selection);
    const caret = mapPoint(Math.max(0, Math.min(cursor.offset, scalars(server).length)), mine);
    marks.push({ id, from: mapPoint(a, mine), to: mapPoint(b, mine), caret });
  }
  const cuts = new Set([0, text.length]);
  for (const m of marks) { cuts.add(m.from); cuts.add(m.to); cuts.add(m.caret); }
  const points = [...cuts].sort((x, y) => x - y);
  const out = document.createDocumentFragment();
  points.forEach((at, k) => {
    for (const m of marks) if (m.caret === at) out.append(caretElement(m.id));
    if (k + 1 === points.length) return;
    const piece = text.slice(at, points[k + 1]).join("");
    const cover = marks.find((m) => m.from <= at && points[k + 1] <= m.to);
    if (!cover) return out.append(piece);
    const mark = document.createElement("mark");
    mark.style.background = color(cover.id).replace(")", " / 25%)");
    mark.textContent = piece;
    out.append(mark);
  });
  // A final newline needs something after it to take its line.
  out.append("\u200b");
  mirror.replaceChildren(out);
  mirror.scrollTop = textarea.scrollTop;
}

function caretElement(id) {
  const caret = document.createElement("span");
  caret.className = "caret";
  caret.style.setProperty("--c", color(id));
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = nameOf(id);
  caret.append(name);
  return caret;
}

// The mirror follows the textarea's scrolling and its width without the
// scrollbar, so that both wrap lines at the same place.
textarea.addEventListener("scroll", () => { mirror.scrollTop = textarea.scrollTop; });
new ResizeObserver(() => {
  mirror.style.width = textarea.clientWidth + 2 + "px";
  draw();
}).observe(textarea);

// Typing sends a write; moving the caret, a move.
for (const kind of ["input", "keyup", "mouseup", "select", "focus"]) {
  textarea.addEventListener(kind, flush);
}
document.getElementById("doc").value = doc;
document.getElementById("name").value = askedName;
start().catch(failed);
