// The live status page (/) sees a connection a test client makes, and its
// message counters move when that client sends and receives.

import { test } from "node:test";
import assert from "node:assert/strict";
import { pair, screenshot, until, setUp } from "./support.mjs";

test("the status page shows a new listener and counters that move", async (t) => {
  const { base, context } = await setUp(t, "status");

  const status = await context.newPage();
  await status.goto(base + "/");
  await until(status, () => document.getElementById("state").textContent === "live");
  await until(status, () => /\d+ \/ \d+/.test(document.getElementById("totals").textContent));

  // The test client: a bare WebSocket in a second page, listening to a
  // channel and answering PINGs like any listener.
  const client = await context.newPage();
  await client.goto(base + "/endpoints");
  await client.evaluate(() => new Promise((opened) => {
    const socket = new WebSocket("ws://" + location.host + "/probe/listen?username=tester");
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      window.received = (window.received || 0) + 1;
      if (frame.type === "PING") socket.send(JSON.stringify({ type: "PONG" }));
    };
    socket.onopen = opened;
    window.probe = socket;
  }));

  // Its topic appears with one subscriber, and channels count two
  // connections: the page's own $sys listener and the probe.
  await until(status, () => {
    const rows = [...document.querySelectorAll("#topics tr")].map((tr) => tr.textContent);
    const channels = [...document.querySelectorAll("#connections tr")].find((tr) => tr.textContent.startsWith("channels"));
    return rows.includes("probe1") && channels && channels.textContent === "channels2";
  });
  const [inBefore, outBefore] = await pair(status, "#totals");

  // A message in (a presence update) and one out (an HTTP emit's DATA).
  await client.evaluate(() => window.probe.send(JSON.stringify({ type: "PRESENCE:UPDATE", payload: { username: "tester2" } })));
  const emitted = await fetch(base + "/probe/emit", { method: "POST", body: JSON.stringify({ n: 1 }) });
  assert.equal(emitted.status, 200);
  assert.equal((await emitted.json()).targeted, 1);
  await until(client, () => window.received >= 2); // CONNECTED and the DATA

  await until(status, ([a, b]) => {
    const [nowIn, nowOut] = document.getElementById("totals").textContent.split("/").map(Number);
    return nowIn > a && nowOut > b + 1; // more than the snapshot itself
  }, [inBefore, outBefore]);
  await screenshot(status, "status");
  await status.setViewportSize({ width: 390, height: 844 });
  await screenshot(status, "status-phone");
});
