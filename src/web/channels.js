// The channels demo: listens to a channel at /<channel>/listen with the
// user's presence in the query (username, status), keeps the member list
// from CONNECTED and PRESENCE:* events, answers PINGs, ACKs what asks for
// it, and emits with POST /<channel>/emit. Everything it sees goes to the
// log, newest first.
"use strict";

const KEEP = 200; // log entries kept
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

let socket = null;
let channel = "";
let token = null; // from /demo/token (with --demo), for a protected hub
const members = new Map(); // client id -> presence

$("channel").value = params.get("channel") || "lobby";
$("username").value = params.get("name") || "visitor-" + Math.floor(Math.random() * 1000);

// The presence this page asks for: name and, if given, status.
function presence() {
  const mine = { username: $("username").value.trim() };
  if ($("status").value.trim()) mine.status = $("status").value.trim();
  return mine;
}

// A token granting the channel, from /demo/token; without --demo there is
// none, and an open hub needs none.
async function fetchToken() {
  const query = new URLSearchParams({ channel, name: $("username").value.trim() });
  try {
    const answer = await fetch("/demo/token?" + query);
    token = answer.ok ? (await answer.json()).token : null;
  } catch (error) {
    token = null;
  }
}

async function listen() {
  if (socket) { socket.onclose = null; socket.close(); }
  channel = $("channel").value;
  await fetchToken();
  members.clear();
  drawMembers();
  for (const el of document.querySelectorAll(".channel-name")) el.textContent = channel;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const query = new URLSearchParams(presence());
  if (token) query.set("token", token);
  socket = new WebSocket(scheme + location.host + "/" + channel + "/listen?" + query);
  socket.onopen = () => state("listening to " + channel, true);
  socket.onclose = (event) => {
    state("closed (" + event.code + "), retrying…", false);
    $("update").disabled = true;
    setTimeout(listen, 2000);
  };
  socket.onmessage = (event) => onFrame(JSON.parse(event.data));
}

function state(text, live) {
  $("state").textContent = text;
  $("state").className = live ? "state live" : "state";
}

function onFrame(frame) {
  switch (frame.type) {
    case "PING": return socket.send(JSON.stringify({ type: "PONG" })); // or be dropped
    case "CONNECTED":
      $("me").textContent = frame.clientID;
      $("update").disabled = false;
      for (const member of frame.payload.members) members.set(member.clientID, member.presence);
      break;
    case "PRESENCE:JOINED":
    case "PRESENCE:UPDATED":
      // Our own update comes back too; this page lists itself apart.
      if (frame.payload.clientID !== frame.clientID) members.set(frame.payload.clientID, frame.payload.presence);
      break;
    case "PRESENCE:LEFT":
      members.delete(frame.payload.clientID);
      break;
    case "DATA":
      if (frame.requires_ack && $("auto-ack").checked) {
        socket.send(JSON.stringify({ type: "ACK", payload: { eventID: frame.eventID } }));
      }
      break;
  }
  drawMembers();
  log(frame.type, describe(frame));
}

// What a log line shows of a frame: the payload, and the event id.
function describe(frame) {
  const text = JSON.stringify(frame.payload, null, 1).replace(/\n\s*/g, " ");
  const extra = frame.eventID ? "  " + frame.eventID + (frame.requires_ack ? " (ACK asked)" : "") : "";
  return text + extra;
}

// The member list: this page first, then the others, each with a color
// of its own.
function drawMembers() {
  const list = $("members");
  list.replaceChildren();
  const me = $("me").textContent;
  const everyone = socket && socket.readyState === WebSocket.OPEN ? [[me, presence()], ...members] : [...members];
  for (const [id, who] of everyone) {
    const item = document.createElement("li");
    item.style.setProperty("--c", color(id));
    item.textContent = (who.username || id) + (who.status ? " · " + who.status : "") + "  (" + (id === me ? "you" : id) + ")";
    if (id === me) item.className = "me";
    list.append(item);
  }
  if (!members.size) {
    const none = document.createElement("li");
    none.className = "none";
    none.textContent = "nobody else";
    list.append(none);
  }
}

function color(id) {
  let hash = 0;
  for (const c of id) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return "hsl(" + (hash % 360) + " 70% 45%)";
}

function log(kind, text) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const label = document.createElement("span");
  label.className = "kind " + kind.replace(":", "-");
  label.textContent = kind;
  const body = document.createElement("pre");
  body.textContent = text;
  item.append(time, label, body);
  $("log").prepend(item);
  while ($("log").children.length > KEEP) $("log").lastChild.remove();
}

// An emit over HTTP, like `curl -d`: the answer goes to the log too.
async function emit(event) {
  event.preventDefault();
  const query = new URLSearchParams();
  if ($("require-ack").checked) query.set("require-ack", "true");
  if ($("clients").value.trim()) query.set("clients", $("clients").value.trim());
  const url = "/" + channel + "/emit" + (query.size ? "?" + query : "");
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const answer = await fetch(url, { method: "POST", body: $("payload").value, headers });
    log("HTTP", answer.status + " " + (await answer.text()).trim());
  } catch (error) {
    log("HTTP", "failed: " + error.message);
  }
}

$("listen").addEventListener("submit", (event) => { event.preventDefault(); listen(); });
$("update").addEventListener("click", () => {
  socket.send(JSON.stringify({ type: "PRESENCE:UPDATE", payload: presence() }));
  drawMembers();
  log("PRESENCE:UPDATE", JSON.stringify(presence()) + "  (sent)");
});
$("emit").addEventListener("submit", emit);
listen();
