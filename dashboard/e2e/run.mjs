// The dashboard in Debian's Chromium against the real stack (started by the Rust system tests
// `the_dashboard_in_chromium_*`, which pass the addresses below). Two scenarios:
// * `first-run`: sign in, onboard a database with the real connection test, see a detection
//   arrive without reloading, approve the proposed index and see it complete, see it on the
//   Tables page (also at a phone's width), see the workload's statement on posts on the Queries
//   page with its history and a marker where the index was built (which opens the action); on
//   the action's card, the served statements' latency chart with the verification's before and
//   after means and its decision in words (also at a phone's width, without overflow); roll it
//   back; a screenshot of every page.
// * `registered`: a database registered before the dashboard is first opened (as `make up`
//   does): signing in lands on its Overview, not the wizard; the week's summary shows the
//   proposed index awaiting approval, then, approved from its link, being verified and kept with
//   the ledger's time saved, without a reload; the live stream's failure is shown and it comes
//   back; the Overview in light, dark and on a phone.
//
// Env: SCENARIO (default first-run), DASHBOARD_URL, GATEWAY_TOKEN, DATABASE_URL, SCREENSHOTS
// (directory; each scenario replaces only its own files), CHROMIUM (path).
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const base = need("DASHBOARD_URL");
const token = need("GATEWAY_TOKEN");
const databaseUrl = need("DATABASE_URL");
const shots = need("SCREENSHOTS");
const scenario = process.env.SCENARIO ?? "first-run";
const SHOTS = {
  "first-run": ["sign-in", "onboarding", "detections", "actions", "tables", "tables-phone", "queries", "queries-phone", "action", "action-dark", "action-phone", "actions-rolled-back", "overview-first-run", "metrics", "settings", "settings-other-theme"],
  registered: ["overview", "overview-dark", "overview-phone"],
};
if (!SHOTS[scenario]) throw new Error(`SCENARIO: no scenario ${scenario} (${Object.keys(SHOTS).join(", ")})`);
mkdirSync(shots, { recursive: true });
for (const name of [...SHOTS[scenario], `failure-${scenario}`]) rmSync(join(shots, `${name}.png`), { force: true });

const step = (text) => console.log(`[e2e] ${text}`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
const page = await context.newPage();
page.setDefaultTimeout(60_000);
const shot = async (name, on = page) => {
  const path = join(shots, `${name}.png`);
  await on.screenshot({ path, fullPage: true });
  step(`screenshot ${path}`);
};

async function signIn() {
  await page.goto(base);
  await page.getByRole("heading", { name: "Sign in to StartupMonkey", exact: true }).waitFor();
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function firstRun() {
  step("sign in");
  await page.goto(base);
  await page.getByRole("heading", { name: "Sign in to StartupMonkey", exact: true }).waitFor();
  await shot("sign-in");
  await page.getByLabel("Token").fill("not-the-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("that token is not the gateway's").waitFor();
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();

  step("onboarding, with the real connection test");
  await page.getByText("Set up StartupMonkey · step 1 of 2").waitFor();
  await page.getByLabel("Name").fill("Shop");
  await page.getByLabel("Connection string").fill(databaseUrl);
  await page.getByRole("button", { name: "Test connection" }).click();
  await page.getByText("Connected: PostgreSQL 15").waitFor();
  await shot("onboarding");
  await page.getByRole("button", { name: "Continue" }).click();
  // A twentieth of the default 2 %, so the test's small workload on posts is worth an index.
  await page.getByLabel("Index advisor: database time per second of unindexed statements on a table (% of one core)").fill("0.1");
  await page.getByLabel("Execution mode").selectOption("approval");
  await page.getByRole("button", { name: "Start monitoring" }).click();
  await page.getByRole("heading", { name: "Overview", exact: true }).waitFor();

  step("a detection appears without reloading");
  await page.getByRole("link", { name: "Detections", exact: true }).click();
  await page.getByRole("heading", { name: "Detections", exact: true }).waitFor();
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  await page.getByText("Missing index on public.posts").waitFor({ timeout: 90_000 });
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error("the page was reloaded");
  await shot("detections");

  step("approve the proposed index; it completes");
  await page.getByRole("link", { name: "Actions", exact: true }).click();
  const card = (status) =>
    page.locator(`[data-testid="action"][data-status="${status}"]`, { hasText: "idx_posts_user_id_created_at" }).first();
  await card("pending_approval").getByRole("button", { name: "Approve" }).click({ timeout: 90_000 });
  await card("completed").waitFor({ timeout: 90_000 });
  await card("completed").locator('[data-testid="ledger"]').waitFor({ timeout: 90_000 });
  await shot("actions");

  step("the Tables page shows public.posts with its new index");
  await page.getByRole("link", { name: "Tables", exact: true }).click();
  await page.getByRole("heading", { name: "Tables", exact: true }).waitFor();
  const posts = page.locator('[data-testid="table"][data-table="public.posts"]');
  await posts.locator('[data-testid="index"][data-index="idx_posts_user_id_created_at"]').waitFor();
  await posts.locator('[data-testid="index"][data-index="posts_pkey"]').getByText("kept: the primary key").waitFor();
  // A fresh server: too early to call any index unused, and it says so.
  await page.getByTestId("scan-period").getByText("Too early to call an index unused").waitFor();
  await shot("tables");
  await page.setViewportSize({ width: 390, height: 844 });
  await posts.waitFor();
  await shot("tables-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("the Queries page shows the statement on posts with its history and the index's marker");
  await page.getByRole("link", { name: "Queries", exact: true }).click();
  await page.getByRole("heading", { name: "Queries", exact: true }).waitFor();
  const statement = page.locator('[data-testid="statement"][data-tables~="posts"]').first();
  await statement.waitFor({ timeout: 60_000 });
  await statement.getByRole("img", { name: "Mean time per call" }).waitFor();
  await statement.locator("canvas").first().waitFor();
  const marker = statement.locator('[data-testid="action-marker"]').first();
  await marker.waitFor({ timeout: 60_000 });
  const text = await statement.getByLabel("Statement").innerText();
  if (!/\$\d/.test(text)) throw new Error(`the statement is not normalised: ${text}`);
  await page.getByTestId("coverage").waitFor();
  await shot("queries");
  await page.setViewportSize({ width: 390, height: 844 });
  await statement.locator('[data-testid="action-marker"]').first().waitFor();
  await shot("queries-phone");
  await page.setViewportSize({ width: 1280, height: 900 });
  await statement.locator('[data-testid="action-marker"]').first().click();
  await page.waitForURL(/\/actions#action-/);
  await card("completed").waitFor();

  step("the action's card charts the served statements' latency, before and after");
  const latency = card("completed").getByTestId("action-latency");
  await latency.getByTestId("action-chart").waitFor({ timeout: 60_000 });
  await latency.getByRole("img", { name: "Served statements: mean time per call" }).locator("canvas").first().waitFor();
  await latency.locator('[data-testid="action-marker"]').first().waitFor();
  await latency.getByTestId("before-mean").filter({ hasText: /^[\d.]+ m?s per call$/ }).waitFor();
  // The after figure once the served statement ran again after the build (a cycle or two).
  await latency.getByTestId("after-mean").filter({ hasText: /^[\d.]+ m?s per call$/ }).waitFor({ timeout: 90_000 });
  const decision = await latency.getByTestId("decision").innerText();
  if (!/mean time per call went from [\d.]+ m?s \(over \d+ calls before\) to [\d.]+ m?s/.test(decision)) throw new Error(`the decision does not state its figures: ${decision}`);
  await latency.scrollIntoViewIfNeeded();
  await shot("action");
  await page.getByRole("button", { name: "Toggle theme" }).click();
  await page.waitForFunction(() => document.documentElement.dataset.theme === "dark");
  await latency.getByTestId("action-chart").locator("canvas").first().waitFor();
  await shot("action-dark");
  await page.getByRole("button", { name: "Toggle theme" }).click();
  await page.waitForFunction(() => document.documentElement.dataset.theme !== "dark");
  await page.setViewportSize({ width: 390, height: 844 });
  await latency.getByTestId("action-chart").locator("canvas").first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 0) throw new Error(`the action's page is ${overflow} px wider than a phone`);
  await shot("action-phone");
  await page.setViewportSize({ width: 1280, height: 900 });

  step("roll it back");
  await page.getByRole("link", { name: "Actions", exact: true }).click();
  await card("completed").getByRole("button", { name: "Roll back" }).click();
  await card("rolled_back").waitFor({ timeout: 60_000 });
  await shot("actions-rolled-back");

  step("every page");
  await page.getByRole("link", { name: "Overview", exact: true }).click();
  await page.getByRole("heading", { name: "Services", exact: true }).waitFor();
  await page.getByText("executor: healthy").waitFor();
  await page.getByTestId("mode").getByText("approval").waitFor();
  await shot("overview-first-run");
  await page.getByRole("link", { name: "Metrics", exact: true }).click();
  await page.getByRole("img", { name: "Health score" }).waitFor();
  await page.getByRole("img", { name: "Health score" }).locator("canvas").first().waitFor();
  await page.getByText(/^[1-9]\d* points/).first().waitFor();
  await shot("metrics");
  await page.getByRole("link", { name: "Settings", exact: true }).click();
  await page.getByRole("heading", { name: "Thresholds", exact: true }).waitFor();
  await shot("settings");
  const themeBefore = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.getByRole("button", { name: "Toggle theme" }).click();
  const themeAfter = await page.evaluate(() => document.documentElement.dataset.theme);
  if (!themeAfter || themeAfter === themeBefore) throw new Error(`the theme did not change (${themeBefore} → ${themeAfter})`);
  await shot("settings-other-theme");
}

/** The Overview of a page of another context (dark, or a phone's width), signed in as `page` is. */
async function overviewIn(options) {
  const other = await browser.newContext({ ...options, storageState: await context.storageState() });
  const view = await other.newPage();
  view.setDefaultTimeout(60_000);
  await view.goto(base);
  await view.getByRole("heading", { name: "Overview", exact: true }).waitFor();
  await view.locator('[data-testid="summary-action"]').first().waitFor();
  return { other, view };
}

async function registered() {
  step("sign in: the Overview of the registered database, not the wizard");
  await signIn();
  await page.getByRole("heading", { name: "Overview", exact: true }).waitFor();
  await page.getByTestId("watched").getByText("app", { exact: true }).waitFor();
  if (await page.getByText("Which PostgreSQL database should StartupMonkey watch?").count()) throw new Error("the wizard showed for a registered database");
  await page.locator('[data-testid="live"][data-state="live"]').waitFor();

  step("the week's summary shows the proposed index awaiting approval, without reloading");
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  const summary = page.getByTestId("weekly-summary");
  const proposed = summary.locator('[data-testid="summary-action"]', { hasText: "idx_posts_user_id_created_at" }).first();
  await proposed.and(page.locator('[data-outcome="awaiting_approval"]')).waitFor({ timeout: 90_000 });
  await summary.getByText(/^[1-9]\d* awaiting approval$/).waitFor();
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error("the page was reloaded");

  step("its link opens the action; approved, the summary shows its outcome");
  const link = proposed.getByRole("link");
  const anchor = decodeURIComponent((await link.getAttribute("href")).split("#")[1]);
  await link.click();
  await page.getByRole("heading", { name: "Actions", exact: true }).waitFor();
  const card = page.locator(`[data-testid="action"][id="${anchor}"]`);
  await card.getByText("idx_posts_user_id_created_at").first().waitFor();
  await card.getByRole("button", { name: "Approve" }).click();
  await card.and(page.locator('[data-status="completed"]')).waitFor({ timeout: 90_000 });
  await page.getByRole("link", { name: "Overview", exact: true }).click();
  await page.getByRole("heading", { name: "Overview", exact: true }).waitFor();
  await page.evaluate(() => {
    window.__notReloaded = true;
  });
  await proposed.and(page.locator("[data-outcome=verifying]")).waitFor({ timeout: 90_000 });
  step("being verified; then kept, with the ledger's time saved in words");
  await proposed.and(page.locator("[data-outcome=kept]")).waitFor({ timeout: 120_000 });
  await summary.getByText(/^[1-9]\d* kept$/).waitFor();
  await proposed.getByText(/^saves \d/).waitFor();
  await summary.getByTestId("time-saved").getByText("of database time saved by the kept fixes", { exact: false }).waitFor();
  if (!(await page.evaluate(() => window.__notReloaded === true))) throw new Error("the page was reloaded");

  step("the live stream fails as when the gateway is down, says so, and comes back");
  // The proxy's answer when the gateway does not answer: an EventSource never retries an error
  // status by itself, so this is the case the dashboard must reopen on its own.
  const gatewayDown = (route) =>
    route.fulfill({ status: 502, contentType: "application/json", body: JSON.stringify({ error: "the gateway at 127.0.0.1 does not answer" }) });
  await page.route("**/api/events", gatewayDown);
  await page.reload();
  await page.locator('[data-testid="live"][data-state="down"]').waitFor({ timeout: 30_000 });
  await page.getByTestId("live-detail").getByText("may be out of date").waitFor();
  await page.unroute("**/api/events", gatewayDown);
  await page.locator('[data-testid="live"][data-state="live"]').waitFor({ timeout: 30_000 });
  await shot("overview");

  step("dark, from the system's preference");
  const dark = await overviewIn({ viewport: { width: 1280, height: 900 }, colorScheme: "dark" });
  const theme = await dark.view.evaluate(() => document.documentElement.dataset.theme);
  if (theme !== "dark") throw new Error(`prefers-color-scheme: dark gave the ${theme} theme`);
  await shot("overview-dark", dark.view);
  await dark.other.close();

  step("a phone's width, nothing wider than the screen");
  const phone = await overviewIn({ viewport: { width: 390, height: 844 }, colorScheme: "light", isMobile: true, hasTouch: true });
  const width = await phone.view.evaluate(() => document.documentElement.scrollWidth);
  if (width > 390) throw new Error(`the Overview is ${width} px wide on a 390 px screen`);
  await shot("overview-phone", phone.view);
  await phone.other.close();
}

try {
  if (scenario === "registered") await registered();
  else await firstRun();
  step("done");
} catch (error) {
  await shot(`failure-${scenario}`).catch(() => {});
  console.error(`[e2e] FAILED: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
