// The status page's script: listens to the reserved channel $sys over the
// hub's channels dialect and redraws the page from each snapshot. It keeps
// the last minutes of message counters to draw the rates.
"use strict";

// Samples kept for the chart: one a snapshot, about one a second.
const KEEP = 300;
const samples = [];
let socket = null;

// The WebSocket URL: same host as the page, ws or wss to match http or https.
// On a protected hub, open the page as /?token=<JWT granting "$sys"> (or
// start the server with --public-channels '$sys'): the token goes along.
function sysUrl() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const token = new URLSearchParams(location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  return scheme + location.host + "/$sys/listen" + query;
}

function connect() {
  const state = document.getElementById("state");
  socket = new WebSocket(sysUrl());
  socket.onopen = () => { state.textContent = "live"; state.className = "state live"; };
  socket.onclose = () => {
    state.textContent = "disconnected, retrying…";
    state.className = "state";
    setTimeout(connect, 2000);
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    // Channels listeners must answer PINGs or be dropped.
    if (frame.type === "PING") socket.send(JSON.stringify({ type: "PONG" }));
    if (frame.type === "DATA") show(frame.payload);
  };
}

function uptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
  const m = Math.floor(s / 60) % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

// Replaces a table body's rows with [label, number] pairs.
function rows(id, pairs) {
  const body = document.getElementById(id);
  body.replaceChildren();
  if (!pairs.length) pairs = [["none", null]];
  for (const [label, n] of pairs) {
    const tr = body.insertRow();
    const name = tr.insertCell();
    name.textContent = label;
    if (n === null) { name.className = "none"; continue; }
    const cell = tr.insertCell();
    cell.className = "n";
    cell.textContent = n;
  }
}

function show(snap) {
  document.getElementById("version").textContent = snap.version;
  document.getElementById("uptime").textContent = uptime(snap.uptime_s);
  document.getElementById("slow").textContent = snap.slow_consumers;
  document.getElementById("totals").textContent = snap.messages.in + " / " + snap.messages.out;
  rows("connections", Object.entries(snap.connections));
  rows("topics", snap.topics.map((t) => [t.name, t.subscribers]));
  rows("documents", snap.documents.map((d) => [d.id, d.editors.join(", ") || "no editors"]));
  samples.push({ t: performance.now(), in: snap.messages.in, out: snap.messages.out });
  if (samples.length > KEEP) samples.shift();
  chart();
}

// Rates between consecutive samples, drawn as two polylines scaled to the
// highest rate shown.
function chart() {
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = Math.max((samples[i].t - samples[i - 1].t) / 1000, 0.001);
    rates.push({
      in: Math.max(samples[i].in - samples[i - 1].in, 0) / dt,
      out: Math.max(samples[i].out - samples[i - 1].out, 0) / dt,
    });
  }
  const last = rates[rates.length - 1] || { in: 0, out: 0 };
  document.getElementById("rate-in").textContent = last.in.toFixed(1);
  document.getElementById("rate-out").textContent = last.out.toFixed(1);
  const top = Math.max(1, ...rates.map((r) => Math.max(r.in, r.out)));
  const x = (i) => (300 * (i + KEEP - 1 - rates.length)) / (KEEP - 2);
  const points = (key) =>
    rates.map((r, i) => x(i).toFixed(1) + "," + (98 - (96 * r[key]) / top).toFixed(1)).join(" ");
  document.getElementById("line-in").setAttribute("points", points("in"));
  document.getElementById("line-out").setAttribute("points", points("out"));
}

connect();
