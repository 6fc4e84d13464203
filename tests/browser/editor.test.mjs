// The editor demo: two pages type at the same time into one document and
// converge on the same text, each showing the other's cursor and name.

import { test } from "node:test";
import assert from "node:assert/strict";
import { PATIENCE, screenshot, until, setUp } from "./support.mjs";

/** Opens the editor on `doc` as `name`, once it has joined. */
async function open(context, base, doc, name) {
  const page = await context.newPage();
  await page.goto(base + "/demo/editor?doc=" + doc + "&name=" + name);
  await until(page, () => !document.getElementById("text").disabled);
  return page;
}

const text = (page) => page.inputValue("#text");

/** Waits until both pages hold the same text, satisfying `wanted`. */
async function converged(a, b, wanted) {
  const deadline = Date.now() + PATIENCE;
  for (;;) {
    const [x, y] = [await text(a), await text(b)];
    if (x === y && wanted(x)) return x;
    if (Date.now() > deadline) assert.fail("no convergence: " + JSON.stringify([x, y]));
    await new Promise((next) => setTimeout(next, 50));
  }
}

/** Waits until `page` draws a caret named `name`. */
function showsCaret(page, name) {
  return until(page, (who) => [...document.querySelectorAll("#mirror .caret .name")]
    .some((tag) => tag.textContent === who), name);
}

test("two editors converge after concurrent typing and show each other's cursor", async (t) => {
  const { base, context } = await setUp(t, "editor");

  const ann = await open(context, base, "notes", "Ann");
  const bob = await open(context, base, "notes", "Bob");

  // A first line from Ann reaches Bob.
  await ann.click("#text");
  await ann.keyboard.type("Shared notes\nsecond line\n");
  await converged(ann, bob, (x) => x === "Shared notes\nsecond line\n");

  // Then both type at once: Ann at the end, Bob at the start.
  await ann.keyboard.press("Control+End");
  await bob.click("#text");
  await bob.keyboard.press("Control+Home");
  await Promise.all([
    ann.keyboard.type("alpha from Ann, ünïcödé 🦀 too", { delay: 15 }),
    bob.keyboard.type("bravo from Bob: ", { delay: 15 }),
  ]);
  const final = await converged(ann, bob,
    (x) => x.includes("alpha from Ann, ünïcödé 🦀 too") && x.includes("bravo from Bob: "));
  assert.ok(final.startsWith("bravo from Bob: "), final);
  assert.ok(final.endsWith("alpha from Ann, ünïcödé 🦀 too"), final);

  // Each page shows the other's caret, named, and lists both users.
  await showsCaret(ann, "Bob");
  await showsCaret(bob, "Ann");
  for (const page of [ann, bob]) {
    await until(page, () => {
      const people = document.getElementById("people").textContent;
      return people.includes("Ann") && people.includes("Bob");
    });
  }

  // A selection shows as one too.
  await bob.keyboard.press("Shift+End");
  await until(ann, () => document.querySelector("#mirror mark") !== null);

  await screenshot(ann, "editor-ann");
  await screenshot(bob, "editor-bob");
  await bob.setViewportSize({ width: 390, height: 844 });
  await screenshot(bob, "editor-phone");
});

/** Puts `page`'s caret at the end of line `line` (from 0). */
function caretAtEndOfLine(page, line) {
  return page.evaluate((n) => {
    const area = document.getElementById("text");
    const lines = area.value.split("\n");
    const at = lines.slice(0, n + 1).join("\n").length;
    area.focus();
    area.setSelectionRange(at, at);
  }, line);
}

test("three editors typing at once on their own lines keep every fragment", async (t) => {
  const { base, context } = await setUp(t, "editor-three");
  const users = ["Ann", "Bob", "Cid"];
  const pages = [];
  for (const name of users) pages.push(await open(context, base, "three", name));
  await pages[0].click("#text");
  await pages[0].keyboard.type("first line\nsecond line\nthird line");
  const same = async (wanted) => {
    const deadline = Date.now() + PATIENCE;
    for (;;) {
      const texts = await Promise.all(pages.map(text));
      if (texts.every((x) => x === texts[0]) && wanted(texts[0])) return texts[0];
      if (Date.now() > deadline) assert.fail("no convergence: " + JSON.stringify(texts));
      await new Promise((next) => setTimeout(next, 50));
    }
  };
  await same((x) => x === "first line\nsecond line\nthird line");

  // Five rounds: everyone types a 20-character fragment with non-ASCII
  // letters at the end of their own line, all at once.
  const letters = ["é", "λ", "𝐀"];
  const fragments = [];
  for (let round = 1; round <= 5; round++) {
    const typed = users.map((name, i) => `<${name}-${letters[i]}-${round}-xyzwvutsr>`);
    fragments.push(...typed);
    await Promise.all(pages.map(async (page, i) => {
      await caretAtEndOfLine(page, i);
      await page.keyboard.type(typed[i], { delay: 10 });
    }));
  }
  const final = await same((x) => fragments.every((f) => x.includes(f)));
  for (const fragment of fragments) {
    assert.equal(final.split(fragment).length - 1, 1, fragment + " once in " + JSON.stringify(final));
  }
  const lines = final.split("\n");
  users.forEach((name, i) => {
    const mine = fragments.filter((f) => f.startsWith("<" + name));
    assert.ok(mine.every((f) => lines[i].includes(f)), name + "'s line: " + lines[i]);
  });
  // A page opened later shows the same text.
  const late = await open(context, base, "three", "Dan");
  assert.equal(await text(late), final);
  await screenshot(pages[0], "editor-three");
});

test("without --demo the editor says what it needs", async (t) => {
  const { base, context } = await setUp(t, "editor-no-demo", false);
  const page = await context.newPage();
  await page.goto(base + "/demo/editor");
  await until(page, () => !document.getElementById("notice").hidden);
  assert.match(await page.textContent("#notice"), /--demo/);
  assert.equal(await page.isDisabled("#text"), true);
  await screenshot(page, "editor-no-demo");
});
