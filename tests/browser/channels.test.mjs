// The channels demo: listening pages see each other's presence, and a
// page receives an HTTP emit as DATA in its log.

import { test } from "node:test";
import assert from "node:assert/strict";
import { screenshot, until, setUp } from "./support.mjs";

test("the channels demo shows presence and receives emits", async (t) => {
  const { base, context } = await setUp(t, "channels");

  const ann = await context.newPage();
  await ann.goto(base + "/demo/channels?channel=garden&name=Ann");
  await until(ann, () => document.getElementById("me").textContent.startsWith("client_"));

  // A second listener joins: Ann's page lists Bob, then his new status.
  const bob = await context.newPage();
  await bob.goto(base + "/demo/channels?channel=garden&name=Bob");
  await until(bob, () => document.getElementById("members").textContent.includes("Ann"));
  await until(ann, () => document.getElementById("members").textContent.includes("Bob"));
  await bob.fill("#status", "watering");
  await bob.click("#update");
  await until(ann, () => document.getElementById("members").textContent.includes("Bob · watering"));

  // An emit from outside the browser reaches both pages' logs.
  const emitted = await fetch(base + "/garden/emit", {
    method: "POST",
    body: JSON.stringify({ plant: "tomato", count: 3 }),
  });
  assert.equal(emitted.status, 200);
  assert.equal((await emitted.json()).targeted, 2);
  for (const page of [ann, bob]) {
    await until(page, () => [...document.querySelectorAll("#log li")].some(
      (li) => li.textContent.includes("DATA") && li.textContent.includes('"plant": "tomato"')));
  }

  // The page's own emit form, with require-ack: Bob's page ACKs, and the
  // HTTP answer in Ann's log names both as having acked.
  await ann.check("#require-ack");
  await ann.fill("#payload", '{"from": "the page"}');
  await ann.click("#emit button");
  await until(ann, () => [...document.querySelectorAll("#log li")].some(
    (li) => li.textContent.includes("HTTP") && li.textContent.includes("200") && li.textContent.includes("acked")));
  await screenshot(ann, "channels");
  await ann.setViewportSize({ width: 390, height: 844 });
  await screenshot(ann, "channels-phone");
});
