// The explorer in a real browser: Debian's headless Chromium, driven by playwright-core, against
// the server at BASE_URL (tests/browser/run.sh starts one).
//
//   1. /explorer (Swagger UI) loads and lists every operation of the served spec;
//   2. a user signs up and signs in through the API; the Authorize button takes the access token;
//   3. "Try it out" on GET /whoami answers 200 with the user's email;
//   4. the `account` tag lists every account operation of the spec; "Try it out" on PATCH /account
//      renames the user (200), and on POST /password/forgot answers 202, after which the real SMTP
//      server (MAIL_SINK_DIR) receives the reset link;
//   5. the mailed reset link opens the server's page (GET /password/reset): the token leaves the
//      address bar, two different passwords are refused in the page, the new password typed twice
//      is set (sign-in with it works), and the same link again says it no longer works;
//   6. the sign-up's verification link opens GET /email/verify, which verifies nothing until
//      "Confirm my email" is pressed, and then GET /whoami says `email_verified: true`;
//   7. /redoc renders the reference with every operation;
//   8. no page asked for anything from another host, and their Content-Security-Policy refused
//      nothing they needed (a `securitypolicyviolation` listener reports every refusal).
//
// Screenshots go to target/browser/. Requests to anywhere but BASE_URL are refused (the pages must
// work offline) and counted. Prints one line per step and, last, `browser: N passed, M failed`.

import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SHOTS = join(ROOT, "target", "browser");
const BASE_URL = process.env.BASE_URL;
const MAIL_SINK_DIR = process.env.MAIL_SINK_DIR;
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

if (!BASE_URL || !MAIL_SINK_DIR) {
  throw new Error("BASE_URL or MAIL_SINK_DIR is not set; run me through tests/browser/run.sh");
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

async function accountOperationsUnderTheirTag(page) {
  const spec = await api("GET", "/openapi.json");
  const expected = [];
  for (const [path, item] of Object.entries(spec.body.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (operation.tags?.includes("account")) expected.push(`${method.toUpperCase()} ${path}`);
    }
  }
  expected.sort();
  check(expected.length > 0, "the spec has no operation tagged account");
  const section = page.locator(".opblock-tag-section").filter({
    has: page.locator('.opblock-tag[data-tag="account"]'),
  });
  const listed = await section.locator(".opblock").evaluateAll((blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "";
      const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "";
      return `${method.toUpperCase()} ${path}`;
    }),
  );
  listed.sort();
  check(
    JSON.stringify(listed) === JSON.stringify(expected),
    `the account tag lists ${JSON.stringify(listed)}, the spec has ${JSON.stringify(expected)}`,
  );
  return `${listed.length} operations`;
}

// Opens the operation at `path`, presses "Try it out", puts `body` in the request body, executes
// it, and answers the status and the response body shown.
async function tryItOut(page, path, body, shotName) {
  const operation = page.locator(".opblock").filter({
    has: page.locator(`.opblock-summary-path[data-path="${path}"]`),
  });
  await operation.locator(".opblock-summary-control").click();
  await operation.locator("button.try-out__btn").click();
  await operation.locator("textarea.body-param__text").fill(JSON.stringify(body));
  await operation.locator("button.execute").click();
  const response = operation.locator(".live-responses-table .response").first();
  await response.waitFor({ timeout: TIMEOUT });
  const status = (await response.locator(".response-col_status").textContent())?.trim();
  const pre = response.locator(".response-col_description pre").first();
  const text = (await pre.count()) > 0 ? ((await pre.textContent()) ?? "") : "";
  await operation.screenshot({ path: join(SHOTS, shotName) });
  return { status, text };
}

async function tryItOutOnUpdateAccount(page) {
  const name = `Renamed in the explorer ${run}`;
  const { status, text } = await tryItOut(page, "/account", { name }, "explorer-update-account.png");
  check(status === "200", `PATCH /account answered ${status} in the explorer: ${text}`);
  const user = JSON.parse(text);
  check(user.email === email && user.name === name, `PATCH /account answered ${text}`);
  const me = await api("GET", "/whoami", undefined, state.token);
  check(me.body?.name === name, `GET /whoami answers ${JSON.stringify(me.body)} after the rename`);
  return `200 ${user.name}`;
}

function mailsTo(address) {
  return readdirSync(MAIL_SINK_DIR)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => JSON.parse(readFileSync(join(MAIL_SINK_DIR, name), "utf8")))
    .filter((mail) => mail.rcpt_tos.some((rcpt) => rcpt.toLowerCase() === address));
}

async function tryItOutOnForgotPassword(page) {
  const { status, text } = await tryItOut(page, "/password/forgot", { email }, "explorer-forgot-password.png");
  check(status === "202", `POST /password/forgot answered ${status} in the explorer: ${text}`);
  const link = `${BASE_URL}/password/reset?token=`;
  const deadline = Date.now() + 10_000;
  while (!mailsTo(email).some((mail) => mail.body.includes(link))) {
    check(Date.now() < deadline, `no mail to ${email} with a link to ${link} within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return "202, and the reset link arrived by mail";
}

// The link to `path` in the latest mail to `email` (PUBLIC_BASE_URL is BASE_URL).
function mailedLink(path) {
  const prefix = `${BASE_URL}${path}?token=`;
  const links = mailsTo(email)
    .flatMap((mail) => mail.body.split(/\s+/))
    .filter((word) => word.startsWith(prefix));
  check(links.length > 0, `no mail to ${email} has a link to ${prefix}`);
  return links[links.length - 1];
}

// Opens a mailed link as a person would, and checks that the page's script took the token out
// of the address bar.
async function openMailedLink(page, link) {
  const errors = state.pageErrors.length;
  await page.goto(link, { waitUntil: "load" });
  await page.locator("#outcome").waitFor({ state: "attached", timeout: TIMEOUT });
  await page.waitForFunction(() => location.search === "", null, { timeout: TIMEOUT });
  check(!page.url().includes("token"), `the address bar still shows ${page.url()}`);
  check(state.pageErrors.length === errors, `the page failed: ${state.pageErrors.slice(errors)}`);
}

async function outcome(page, kind, text) {
  const shown = page.locator(`#outcome.${kind}`, { hasText: text });
  await shown.waitFor({ timeout: TIMEOUT }).catch(async () => {
    const actual = await page.locator("#outcome").textContent();
    throw new Error(`the page says ${JSON.stringify(actual)}, not ${kind}: ${JSON.stringify(text)}`);
  });
}

async function resetThroughTheMailedPage(page) {
  const link = mailedLink("/password/reset");
  state.resetLink = link;
  await openMailedLink(page, link);
  const newPassword = `reset in chromium ${run}`;
  await page.locator("#new-password").fill(newPassword);
  await page.locator("#confirm-password").fill(`${newPassword} typo`);
  await page.locator("#submit").click();
  await outcome(page, "failed", "The two passwords differ");
  await page.locator("#confirm-password").fill(newPassword);
  await page.locator("#submit").click();
  await outcome(page, "ok", "Your password is changed; sign in with it");
  await shot(page, "reset-password-page.png");
  const old = await api("POST", "/signin", { email, password });
  check(old.status === 401, `sign-in with the old password answered ${old.status}`);
  const signin = await api("POST", "/signin", { email, password: newPassword });
  check(signin.status === 200, `sign-in with the new password answered ${signin.status}`);
  state.token = signin.body.access_token;
  return "the new password signs in, the old one does not";
}

async function theUsedResetLinkNoLongerWorks(page) {
  await openMailedLink(page, state.resetLink);
  const another = `another reset in chromium ${run}`;
  await page.locator("#new-password").fill(another);
  await page.locator("#confirm-password").fill(another);
  await page.locator("#submit").click();
  await outcome(page, "failed", "This link no longer works");
  await shot(page, "reset-password-used-link.png");
  const signin = await api("POST", "/signin", { email, password: another });
  check(signin.status === 401, `the used link set a password: sign-in answered ${signin.status}`);
  return "the page says so";
}

async function verifyThroughTheMailedPage(page) {
  await openMailedLink(page, mailedLink("/email/verify"));
  const before = await api("GET", "/whoami", undefined, state.token);
  check(before.body?.email_verified === false, `opening the page verified the email: ${JSON.stringify(before.body)}`);
  await page.getByRole("button", { name: "Confirm my email" }).click();
  await outcome(page, "ok", "Your email is confirmed");
  await shot(page, "verify-email-page.png");
  const after = await api("GET", "/whoami", undefined, state.token);
  check(after.body?.email_verified === true, `GET /whoami answered ${JSON.stringify(after.body)}`);
  // Back to the explorer for the steps that follow.
  await page.goto(`${BASE_URL}/explorer`, { waitUntil: "load" });
  await page.locator(".opblock").first().waitFor({ timeout: TIMEOUT });
  return "email_verified: true";
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
  ["the account operations are under the account tag", accountOperationsUnderTheirTag],
  ['"Try it out" on PATCH /account', tryItOutOnUpdateAccount],
  // Before the reset: a reset verifies the email too (its link reached the address).
  ["the sign-up's verification link opens a page that confirms the email", verifyThroughTheMailedPage],
  ['"Try it out" on POST /password/forgot, and the mail arrives', tryItOutOnForgotPassword],
  ["the mailed reset link opens a page that sets the new password", resetThroughTheMailedPage],
  ["the same reset link again: the page says it no longer works", theUsedResetLinkNoLongerWorks],
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
  // Every refusal of a page's policy, as a console message the listener below counts (an init
  // script runs whatever the page's policy says).
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`Content Security Policy refused ${event.violatedDirective}: ${event.blockedURI}`);
    });
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
