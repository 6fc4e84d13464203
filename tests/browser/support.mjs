// Shared helpers for the browser tests: a switchboard process of the test's
// own (port 0, --demo, a fresh data directory), Debian's Chromium driven by
// playwright-core, and a place for screenshots. Every wait is on a
// condition with a generous deadline: the machine may be a loaded 2-core
// box.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** How long any single wait may take. */
export const PATIENCE = 20_000;

/** Where screenshots go (target/ is not committed). */
export const ARTIFACTS = join(root, "target/browser-artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

/**
 * Starts target/debug/switchboard on 127.0.0.1, port 0, with --demo unless
 * `demo` is false and with `extra` flags, and resolves to {base, stop} once
 * it prints where it listens. Its standard error goes to
 * ARTIFACTS/<name>-server.log.
 */
export async function startServer(name, demo = true, extra = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "switchboard-browser-"));
  const bin = process.env.SWITCHBOARD_BIN || join(root, "target/debug/switchboard");
  const args = ["--listen", "127.0.0.1:0", "--data-dir", dataDir, ...(demo ? ["--demo"] : []), ...extra];
  const child = spawn(bin, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stderr.pipe(createWriteStream(join(ARTIFACTS, name + "-server.log")));
  const base = await new Promise((done, fail) => {
    let printed = "";
    const timer = setTimeout(() => fail(new Error("the server printed no address: " + printed)), PATIENCE);
    child.stdout.on("data", (chunk) => {
      printed += chunk;
      // https:// when the server speaks TLS (tls.test.mjs).
      const found = printed.match(/(https?):\/\/(127\.0\.0\.1:\d+)\/healthz/);
      if (found) { clearTimeout(timer); done(found[1] + "://" + found[2]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); fail(new Error("the server exited: " + code)); });
  });
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      const late = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(late);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { base, stop };
}

/**
 * Debian's Chromium, headless, with a fresh empty profile and nothing that
 * reaches out to the network on its own; `extra` flags added.
 */
export async function launchBrowser(extra = []) {
  const profile = mkdtempSync(join(tmpdir(), "switchboard-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1100, height: 800 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...extra,
    ],
  });
  context.setDefaultTimeout(PATIENCE);
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/** A full-page screenshot in ARTIFACTS. */
export async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, name + ".png"), fullPage: true });
}

/** A page's text content of `selector`, as a number pair "a / b". */
export async function pair(page, selector) {
  const text = await page.textContent(selector);
  return text.split("/").map((n) => Number(n.trim()));
}

/**
 * Waits until `condition(arg)` holds in `page`. Polls on a timer rather
 * than on animation frames, which a page in a background tab gets rarely.
 */
export function until(page, condition, arg) {
  return page.waitForFunction(condition, arg, { polling: 100, timeout: PATIENCE });
}

/**
 * A server and a browser for test `t`, both ended when it ends (the
 * browser first, so the server stops at once; the server even when the
 * browser fails to start).
 */
export async function setUp(t, name, demo = true, extra = [], browserFlags = []) {
  const server = await startServer(name, demo, extra);
  let browser = null;
  t.after(async () => {
    if (browser) await browser.close();
    await server.stop();
  });
  browser = await launchBrowser(browserFlags);
  return { base: server.base, context: browser.context };
}
