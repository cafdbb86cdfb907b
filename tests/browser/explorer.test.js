// The explorer in a real browser: Debian's headless Chromium, driven by playwright-core, against
// the server at BASE_URL (tests/browser/run.sh starts one).
//
//   1. /explorer (Swagger UI) loads and lists every operation of the served spec;
//   2. a user signs up and signs in through the API; the Authorize button takes the access token;
//   3. "Try it out" on GET /whoami answers 200 with the user's email;
//   4. /redoc renders the reference with every operation;
//   5. neither page asked for anything from another host, and their Content-Security-Policy
//      refused nothing they needed.
//
// Screenshots go to target/browser/. Requests to anywhere but BASE_URL are refused (the pages must
// work offline) and counted. Prints one line per step and, last, `browser: N passed, M failed`.

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SHOTS = join(ROOT, "target", "browser");
const BASE_URL = process.env.BASE_URL;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TIMEOUT = 30_000;

if (!BASE_URL) {
  throw new Error("BASE_URL is not set; run me through tests/browser/run.sh");
}

const run = randomBytes(4).toString("hex");
const email = `browser-${run}@example.com`;
const password = `explorer in chromium ${run}`;
const state = { blocked: [], pageErrors: [], policyViolations: [] };

function check(condition, what) {
  if (!condition) {
    throw new Error(what);
  }
}

async function api(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
}

async function explorerListsEveryOperation(page) {
  const spec = await api("GET", "/openapi.json");
  check(spec.status === 200, `GET /openapi.json answered ${spec.status}`);
  const expected = [];
  for (const [path, item] of Object.entries(spec.body.paths)) {
    for (const method of Object.keys(item)) expected.push(`${method.toUpperCase()} ${path}`);
  }
  expected.sort();

  await page.goto(`${BASE_URL}/explorer`, { waitUntil: "load" });
  await page.locator(".opblock").first().waitFor({ timeout: TIMEOUT });
  const listed = await page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "";
      const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "";
      return `${method.toUpperCase()} ${path}`;
    }),
  );
  listed.sort();
  await shot(page, "explorer.png");
  check(
    JSON.stringify(listed) === JSON.stringify(expected),
    `the explorer lists ${JSON.stringify(listed)}, the spec has ${JSON.stringify(expected)}`,
  );
  return `${listed.length} operations`;
}

async function signUpAndSignIn() {
  const signup = await api("POST", "/signup", { email, password, name: "Browser" });
  check(signup.status === 201, `signup answered ${signup.status}: ${JSON.stringify(signup.body)}`);
  const signin = await api("POST", "/signin", { email, password });
  check(signin.status === 200, `signin answered ${signin.status}: ${JSON.stringify(signin.body)}`);
  state.token = signin.body.access_token;
  return email;
}

async function authorize(page) {
  await page.locator("button.authorize").first().click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  await dialog.waitFor({ timeout: TIMEOUT });
  await dialog.locator("input").first().fill(state.token);
  await dialog.locator("button.authorize").click();
  // Once authorized, the dialog offers "Logout" for the scheme.
  await dialog.locator("button", { hasText: "Logout" }).waitFor({ timeout: TIMEOUT });
  await shot(page, "explorer-authorized.png");
  await dialog.locator("button.btn-done").click();
  await dialog.waitFor({ state: "detached", timeout: TIMEOUT });
  const locked = await page.locator("button.authorize.locked").count();
  check(locked > 0, "the Authorize button does not show the lock as closed");
}

async function tryItOutOnWhoami(page) {
  const operation = page.locator(".opblock").filter({
    has: page.locator('.opblock-summary-path[data-path="/whoami"]'),
  });
  await operation.locator(".opblock-summary-control").click();
  await operation.locator("button.try-out__btn").click();
  await operation.locator("button.execute").click();
  const response = operation.locator(".live-responses-table .response").first();
  await response.waitFor({ timeout: TIMEOUT });
  const status = (await response.locator(".response-col_status").textContent())?.trim();
  const body = (await response.locator(".response-col_description pre").first().textContent()) ?? "";
  await shot(page, "explorer-whoami-page.png");
  await operation.screenshot({ path: join(SHOTS, "explorer-whoami.png") });
  check(status === "200", `GET /whoami answered ${status} in the explorer: ${body}`);
  const user = JSON.parse(body);
  check(user.email === email, `GET /whoami answered ${body}, not ${email}`);
  return `200 ${user.email}`;
}

async function redocRenders(page) {
  const spec = await api("GET", "/openapi.json");
  const summaries = Object.values(spec.body.paths).flatMap((item) =>
    Object.values(item).map((operation) => operation.summary),
  );
  await page.goto(`${BASE_URL}/redoc`, { waitUntil: "load" });
  await page.locator(".api-content").waitFor({ timeout: TIMEOUT });
  await page.locator("h1", { hasText: "newsapi" }).first().waitFor({ timeout: TIMEOUT });
  const text = await page.locator("body").innerText();
  await shot(page, "redoc.png");
  const missing = summaries.filter((summary) => !text.includes(summary));
  check(missing.length === 0, `Redoc does not show ${JSON.stringify(missing)}`);
  return `${summaries.length} operations`;
}

async function nothingFromOtherHostsAndNothingRefused() {
  check(state.blocked.length === 0, `the pages asked other hosts for ${state.blocked.join(", ")}`);
  check(
    state.policyViolations.length === 0,
    `the Content-Security-Policy refused: ${state.policyViolations.join("; ")}`,
  );
  return "0 requests off the server, 0 refused by the policy";
}

const steps = [
  ["/explorer lists every operation", explorerListsEveryOperation],
  ["sign up and sign in (through the API)", signUpAndSignIn],
  ["the Authorize button takes the bearer token", authorize],
  ['"Try it out" on GET /whoami', tryItOutOnWhoami],
  ["/redoc renders", redocRenders],
  ["nothing from other hosts, nothing refused by the policy", nothingFromOtherHostsAndNothingRefused],
];

mkdirSync(SHOTS, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "newsapi-chromium-"));
let passed = 0;
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
  });
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(BASE_URL) || url.startsWith("data:")) return route.continue();
    state.blocked.push(url);
    return route.abort();
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (err) => state.pageErrors.push(String(err)));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) state.policyViolations.push(message.text());
  });
  for (const [name, step] of steps) {
    try {
      const detail = await step(page);
      passed += 1;
      console.log(`ok - ${name}${detail ? ` (${detail})` : ""}`);
    } catch (err) {
      console.log(`not ok - ${name}`);
      console.log(err instanceof Error ? (err.stack ?? err.message) : err);
      await shot(page, "failure.png").catch(() => {});
      break; // later steps build on earlier ones
    }
  }
} catch (err) {
  console.log(`not ok - start Chromium (${CHROMIUM})`);
  console.log(err instanceof Error ? (err.stack ?? err.message) : err);
} finally {
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
if (state.blocked.length > 0) {
  console.log(`note: refused ${state.blocked.length} request(s) off the server: ${state.blocked.join(", ")}`);
}
if (state.pageErrors.length > 0) {
  console.log(`note: errors in the pages: ${state.pageErrors.join("; ")}`);
}
console.log(`screenshots: ${SHOTS}`);
const failed = steps.length - passed;
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
