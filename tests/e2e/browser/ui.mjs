// Drives Debian's chromium through kubemedic's web UI, as two people: a viewer and an
// approver, each signing in through the OIDC provider stand-in. Prints one JSON verdict
// line; the Rust test (tests/e2e/tests/ui_browser.rs) asserts on it.
//
// KM_UI (JSON): { url, incident, proposal, labels: [chain node labels],
//                 screenshots: directory or null, chromium: path }
import { chromium } from "playwright-core";
import { join } from "node:path";

const cfg = JSON.parse(process.env.KM_UI);
const out = { viewer: {}, approver: {}, console_errors: [] };
// Without the background-networking flags chromium keeps trying to reach Google's services.
const args = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage",
];
// launch() gives chromium a fresh temporary --user-data-dir of its own and removes it after.
const browser = await chromium.launch({ executablePath: cfg.chromium || "/usr/bin/chromium", args });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const squash = (s) => (s || "").replace(/\s+/g, "");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function newPage(ctx) {
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.hostname !== "127.0.0.1" && u.protocol !== "data:") out.offsite = (out.offsite || []).concat(r.url());
  });
  return page;
}

// Sign in: any page → /ui/login → the provider's page → "Sign in as <who>" → back, signed in.
async function signIn(page, who) {
  await page.goto(`${cfg.url}/ui/`);
  if (!page.url().endsWith("/ui/login")) throw new Error(`not sent to the login page: ${page.url()}`);
  await page.click("#sign-in");
  await page.waitForSelector(`#as-${who}`);
  await page.click(`#as-${who}`);
  await page.waitForURL(`${cfg.url}/ui/`, { timeout: 20000 });
  return (await page.textContent(".who")) || "";
}

// POST a decision from inside the page (same origin, the session cookie goes along).
async function forge(page, body) {
  return page.evaluate(async ([id, body]) => {
    const r = await fetch(`/ui/proposals/${id}/decide`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
    });
    return r.status;
  }, [cfg.proposal, body]);
}

async function csrfOf(page) {
  return page.evaluate(() => document.querySelector("input[name=csrf]")?.value || "");
}

try {
  // The viewer: reads, no buttons, and a forged POST is refused.
  const viewerCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const v = await newPage(viewerCtx);
  out.viewer.who = await signIn(v, "victor");
  await v.goto(`${cfg.url}/ui/proposals/${cfg.proposal}`);
  out.viewer.state = (await v.textContent("#state")).trim();
  out.viewer.buttons = await v.locator("form.decide button").count();
  out.viewer.note = await v.locator("#no-decision").count();
  out.viewer.forged_without_csrf = await forge(v, "decision=approve");
  out.viewer.forged_with_own_csrf = await forge(v, `decision=approve&csrf=${await csrfOf(v)}`);

  // The approver: the list, the incident with its graph drawn, the proposal, approve.
  const a = await newPage(context);
  out.approver.who = await signIn(a, "ana");
  out.approver.cookie = (await context.cookies()).filter((c) => c.name === "km_session")
    .map((c) => ({ httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite }))[0];
  const link = `a[href="/ui/incidents/${cfg.incident}"]`;
  out.approver.listed = await a.locator(link).count();
  await a.click(link);
  await a.waitForFunction(() => document.body.dataset.graph, null, { timeout: 60000 });
  out.approver.graph = await a.evaluate(() => document.body.dataset.graph);
  const svg = a.locator(".graph svg");
  out.approver.svgs = await svg.count();
  const text = out.approver.svgs ? squash(await svg.first().textContent()) : "";
  out.approver.svg_nodes = out.approver.svgs ? await a.locator(".graph svg .node").count() : 0;
  out.approver.labels_missing = cfg.labels.filter((l) => !text.includes(squash(l)));
  if (cfg.screenshots) await a.screenshot({ path: join(cfg.screenshots, "incident.png"), fullPage: true });

  await a.goto(`${cfg.url}/ui/proposals/${cfg.proposal}`);
  out.approver.buttons = await a.locator("form.decide button").count();
  out.approver.diff_lines = await a.locator("pre.diff .add, pre.diff .del").count();
  out.approver.forged_without_csrf = await forge(a, "decision=approve");
  out.approver.forged_wrong_csrf = await forge(a, `decision=approve&csrf=${"0".repeat(64)}`);
  out.approver.state_after_forgery = (await a.textContent("#state")).trim();
  if (cfg.screenshots) await a.screenshot({ path: join(cfg.screenshots, "proposal.png"), fullPage: true });
  // A second tab on the list, never reloaded: it must follow the bus on its own.
  const l = await newPage(context);
  let navigations = 0;
  l.on("framenavigated", (f) => { if (f === l.mainFrame()) navigations += 1; });
  await l.goto(`${cfg.url}/ui/`);
  await l.waitForSelector("#live:not([hidden])", { timeout: 15000 });
  const badge = l.locator(`#proposals tr:has(a[href="/ui/proposals/${cfg.proposal}"]) .badge`);
  out.list = { before: (await badge.textContent()).trim() };

  await Promise.all([a.waitForURL(`${cfg.url}/ui/proposals/${cfg.proposal}`), a.click("button.approve")]);

  // Applied and verified: the page follows the bus; reload as a fallback.
  const deadline = Date.now() + 150000;
  let state = "";
  while (Date.now() < deadline) {
    try {
      state = ((await a.textContent("#state", { timeout: 5000 })) || "").trim();
    } catch (_) { /* reloading */ }
    if (state === "verified" || state === "failed") break;
    await sleep(2000);
    try { await a.reload(); } catch (_) { /* a live reload raced ours */ }
  }
  out.approver.final_state = state;
  out.approver.history = await a.locator("table.history tbody tr").count();
  for (let i = 0; i < 20 && (await badge.textContent()).trim() !== "verified"; i++) await sleep(1000);
  out.list.after = (await badge.textContent()).trim();
  out.list.navigations = navigations;
  if (cfg.screenshots) await a.screenshot({ path: join(cfg.screenshots, "proposal-verified.png"), fullPage: true });
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
