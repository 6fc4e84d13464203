// A protected hub (--jwt-key, --emit-token): the demo pages work with the
// tokens /demo/token grants, the status page needs a token granting $sys
// (passed in its own URL), and an emit without credentials is refused.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { screenshot, until, setUp } from "./support.mjs";

const KEY = "browser k3y";
const EMIT_KEY = "browser emit";

/** An HS256 token signed with KEY, as any JWT library would make it. */
function token(claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const signed = encode({ alg: "HS256", typ: "JWT" }) + "." +
    encode({ sub: "tester", exp: Math.floor(Date.now() / 1000) + 600, ...claims });
  return signed + "." + createHmac("sha256", KEY).update(signed).digest("base64url");
}

test("on a protected hub the demos use their tokens and the status page its own", async (t) => {
  const { base, context } = await setUp(t, "access", true, ["--jwt-key", KEY, "--emit-token", EMIT_KEY]);

  // The channels demo listens with the token /demo/token grants for its channel.
  const ann = await context.newPage();
  await ann.goto(base + "/demo/channels?channel=garden&name=Ann");
  await until(ann, () => document.getElementById("me").textContent.startsWith("client_"));

  // Anonymous emits are refused; the operator's key and the page's own
  // token (its publish claim) reach the page.
  const anonymous = await fetch(base + "/garden/emit", { method: "POST", body: "1" });
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).code, "NO_TOKEN");
  const operator = await fetch(base + "/garden/emit", {
    method: "POST",
    body: JSON.stringify({ from: "the operator" }),
    headers: { Authorization: "Bearer " + EMIT_KEY },
  });
  assert.equal(operator.status, 200);
  await until(ann, () => [...document.querySelectorAll("#log li")].some(
    (li) => li.textContent.includes("DATA") && li.textContent.includes("the operator")));
  await ann.fill("#payload", '{"from": "the page"}');
  await ann.click("#emit button");
  await until(ann, () => [...document.querySelectorAll("#log li")].some(
    (li) => li.querySelector(".kind").textContent === "HTTP" && li.querySelector("pre").textContent.startsWith("200")));
  await until(ann, () => [...document.querySelectorAll("#log li")].some(
    (li) => li.textContent.includes("DATA") && li.textContent.includes("the page")));

  // The status page: refused without a token, live with one granting $sys.
  const refused = await context.newPage();
  await refused.goto(base + "/");
  await until(refused, () => document.getElementById("state").textContent.includes("retrying"));
  const status = await context.newPage();
  await status.goto(base + "/?token=" + token({ channels: ["$sys"] }));
  await until(status, () => document.getElementById("state").textContent === "live");
  await screenshot(status, "status-protected");
});
