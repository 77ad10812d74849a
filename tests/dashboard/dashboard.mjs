// Drives the voiceagent dashboard in headless Chromium, step by step with the Rust test
// (agent/tests/api_dashboard.rs) that owns voiceagent and baresip:
//   1. open the dashboard, enter the token, wait for the live stream  -> prints READY
//   2. (the Rust test dials with baresip)
//   3. see the call card, an agent transcript line and the level meters move; screenshot
//   4. press "Hang up" and see the call end; screenshot                 -> prints DONE
// Environment: DASHBOARD_URL, API_TOKEN, SCREENSHOT_DIR, optional CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.DASHBOARD_URL;
const token = process.env.API_TOKEN;
const shots = process.env.SCREENSHOT_DIR || "target/dashboard";
if (!url || !token) {
  console.error("DASHBOARD_URL and API_TOKEN must be set");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "voiceagent-chromium-"));
const step = (msg) => console.log(msg);

// A fresh profile (--user-data-dir) per run; Playwright passes it for a persistent context.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  const page = browser.pages()[0] || (await browser.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Expected HTTP errors (401 before the token, 403 for the wrong one, 404 for the recording)
  // show up as "Failed to load resource"; anything else logged as an error is a bug.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });
  await page.goto(url);

  // The token is asked once; a wrong one is refused.
  await page.locator("#token-dialog[open]").waitFor();
  await page.fill("#token-input", "wrong-token-0123456789");
  await page.click("#token-submit");
  await page.locator("#token-error", { hasText: "not valid" }).waitFor();
  await page.fill("#token-input", token);
  await page.click("#token-submit");
  await page.locator("#token-dialog[open]").waitFor({ state: "detached" }).catch(() => {});
  await page.waitForFunction(() => !document.querySelector("#token-dialog").open);
  const stored = await page.evaluate(() => sessionStorage.getItem("voiceagent.token"));
  if (stored !== token) throw new Error("the token is not kept in sessionStorage");
  await page.locator("#stream-state", { hasText: "live" }).waitFor();
  await page.locator("#registration", { hasText: "IP mode" }).waitFor();
  step("READY");

  // A live call appears with its transcript as it is spoken.
  const card = page.locator(".call-card").first();
  await card.waitFor({ timeout: 30000 });
  const callId = await card.getAttribute("data-call");
  step(`CALL ${callId}`);
  await card.locator(".state.answered").waitFor({ timeout: 30000 });
  await card.locator(".line.agent", { hasText: "Echo-Test" }).waitFor({ timeout: 30000 });
  // Level meters move: collect the agent and caller meter widths over time.
  const widths = async () => page.evaluate((id) => {
    const c = document.querySelector(`.call-card[data-call="${id}"]`);
    return ["caller", "agent"].map((d) => parseFloat(c.querySelector(`.meter.${d} .fill`).style.width) || 0);
  }, callId);
  const seen = { caller: new Set(), agent: new Set() };
  const until = Date.now() + 15000;
  while (Date.now() < until && (seen.caller.size < 3 || seen.agent.size < 3)) {
    const [c, a] = await widths();
    seen.caller.add(c.toFixed(1));
    seen.agent.add(a.toFixed(1));
    await page.waitForTimeout(250);
  }
  if (seen.agent.size < 3) throw new Error(`the agent meter did not move: ${[...seen.agent]}`);
  if (seen.caller.size < 3) throw new Error(`the caller meter did not move: ${[...seen.caller]}`);
  await card.locator(".call-facts b", { hasText: "opus" }).waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(shots, "dashboard-live-call.png") });
  step("SCREENSHOT live");

  // Hang up from the dashboard; the card shows the end.
  await card.locator("button.hangup").click();
  await card.locator(".state.ended").waitFor({ timeout: 15000 });
  if (!(await card.locator("button.hangup").isDisabled())) throw new Error("hang-up stays enabled after the end");
  await page.screenshot({ path: join(shots, "dashboard-ended.png") });
  step("ENDED");

  // The call is in the history with its transcript.
  await page.click('.tab[data-tab="history"]');
  const row = page.locator(`#history-table tr[data-call="${callId}"]`);
  await row.waitFor({ timeout: 15000 });
  await row.click();
  await page.locator("#call-detail .line.agent", { hasText: "Echo-Test" }).waitFor();
  await page.locator("#call-detail .recording", { hasText: "recording not enabled" }).waitFor();
  await page.screenshot({ path: join(shots, "dashboard-history.png") });
  await page.click('.tab[data-tab="orders"]');
  await page.locator("#no-orders").waitFor();
  await page.screenshot({ path: join(shots, "dashboard-orders.png") });
  if (errors.length) throw new Error("the page logged errors: " + errors.join("; "));
  step("DONE");
} catch (e) {
  failed = true;
  console.error("FAILED: " + (e && e.stack ? e.stack : e));
  try {
    const pages = browser.pages();
    if (pages[0]) await pages[0].screenshot({ path: join(shots, "dashboard-failure.png") });
  } catch (_) { /* best effort */ }
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
