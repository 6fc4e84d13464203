// Over https (a build with `--features tls`): the status page and the
// channels demo, their WebSockets over wss://. The server uses the test
// certificate in tls/ (self-signed, for localhost and 127.0.0.1, a test
// key and nothing else); Chromium trusts exactly that key through its
// --ignore-certificate-errors-spki-list flag, and no other.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash, createPublicKey } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { screenshot, until, setUp } from "./support.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const cert = join(here, "tls/cert.pem");
const key = join(here, "tls/key.pem");
// The base64 SHA-256 of the key's SubjectPublicKeyInfo, as Chromium wants it.
const spki = createHash("sha256")
  .update(createPublicKey(readFileSync(key)).export({ type: "spki", format: "der" }))
  .digest("base64");

test("the status page and the channels demo work over https and wss", async (t) => {
  const { base, context } = await setUp(t, "tls", true,
    ["--tls-cert", cert, "--tls-key", key], ["--ignore-certificate-errors-spki-list=" + spki]);
  assert.match(base, /^https:\/\/127\.0\.0\.1:\d+$/);

  // The status page's own wss:// listener of $sys goes live.
  const status = await context.newPage();
  await status.goto(base + "/");
  await until(status, () => document.getElementById("state").textContent === "live");
  assert.equal(await status.evaluate(() => location.protocol), "https:");

  // The channels demo: a listener over wss://, and the page's own emit over
  // https:// reaching it.
  const ann = await context.newPage();
  await ann.goto(base + "/demo/channels?channel=garden&name=Ann");
  await until(ann, () => document.getElementById("me").textContent.startsWith("client_"));
  await ann.fill("#payload", '{"over": "tls"}');
  await ann.click("#emit button");
  await until(ann, () => [...document.querySelectorAll("#log li")].some(
    (li) => li.textContent.includes("DATA") && li.textContent.includes('"over": "tls"')));
  await screenshot(ann, "channels-https");
});
