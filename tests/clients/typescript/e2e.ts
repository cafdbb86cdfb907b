// End-to-end script for the TypeScript client generated from openapi.yaml: openapi-typescript
// writes the types (generated/schema.d.ts), openapi-fetch is the typed fetch client over them.
//
// Runs against the server at BASE_URL (tests/clients/typescript/run.sh starts one): sign up, sign
// in, whoami, create news, list them with a filter and a cursor, update one, delete it, and check
// that a 401 and a 422 come back as typed `Problem` errors. Then the account, with the mails a real
// SMTP server received (MAIL_SINK_DIR, one JSON file per mail): verify the email with the link
// mailed at sign-up, set and clear the name, change the password, reset a forgotten one by mail
// (and reuse the token: 400 invalid-token), change the email by mail, and delete the account.
// Prints one line per step and, last, `clients-typescript: N passed, M failed`.

import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type News = components["schemas"]["News"];
type Problem = components["schemas"]["Problem"];
type User = components["schemas"]["User"];

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set; run me through tests/clients/typescript/run.sh`);
  }
  return value;
}

const baseUrl = requiredEnv("BASE_URL");
const mailSinkDir = requiredEnv("MAIL_SINK_DIR");
const run = randomBytes(4).toString("hex");
const email = `typescript-client-${run}@example.com`;
const newEmail = `typescript-client-${run}-new@example.com`;
const password = `generated typescript client ${run}`;
const changedPassword = `changed typescript client ${run}`;
const resetPassword = `reset typescript client ${run}`;

const anonymous: Client<paths> = createClient<paths>({ baseUrl });

interface State {
  user?: User;
  client?: Client<paths>;
  created: News[];
  mailsRead: Set<string>;
  resetToken?: string;
}
const state: State = { created: [], mailsRead: new Set() };

// One mail the SMTP server accepted (tests/mail/smtp_sink.py writes one JSON file per mail).
interface ReceivedMail {
  rcpt_tos: string[];
  subject: string;
  body: string;
}

function receivedMails(): [string, ReceivedMail][] {
  return readdirSync(mailSinkDir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => [name, JSON.parse(readFileSync(join(mailSinkDir, name), "utf8")) as ReceivedMail]);
}

function isFor(mail: ReceivedMail, to: string): boolean {
  return mail.rcpt_tos.some((rcpt) => rcpt.toLowerCase() === to.toLowerCase());
}

function mailsTo(to: string): number {
  return receivedMails().filter(([, mail]) => isFor(mail, to)).length;
}

// The token of the first mail to `to` not read yet whose body links to BASE_URL + path (the server
// runs with PUBLIC_BASE_URL = BASE_URL), waiting up to 10 s.
async function mailedToken(to: string, path: string): Promise<string> {
  const prefix = `${baseUrl}${path}?token=`.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const link = new RegExp(`${prefix}([A-Za-z0-9_~.%-]+)`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const [name, mail] of receivedMails()) {
      if (state.mailsRead.has(name) || !isFor(mail, to)) continue;
      const found = link.exec(mail.body);
      if (found?.[1]) {
        state.mailsRead.add(name);
        return found[1];
      }
    }
    check(Date.now() < deadline, `no mail to ${to} linking to ${path} within 10 s`);
    await sleep(100);
  }
}

async function signInAs(address: string, secret: string): Promise<Client<paths>> {
  const { data, error, response } = await anonymous.POST("/signin", {
    body: { email: address, password: secret },
  });
  check(response.status === 200 && data, `signin as ${address} failed`, error);
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${data.access_token}` } });
}

async function signInRefused(address: string, secret: string): Promise<void> {
  const { error, response } = await anonymous.POST("/signin", {
    body: { email: address, password: secret },
  });
  check(response.status === 401 && error?.status === 401, `signin as ${address} was not refused`);
}

async function whoamiVia(client: Client<paths>): Promise<User> {
  const { data, error } = await client.GET("/whoami");
  check(data, "whoami failed", error);
  return data;
}

async function whoamiStatus(client: Client<paths>): Promise<number> {
  return (await client.GET("/whoami")).response.status;
}

function check(condition: unknown, what: string, detail?: unknown): asserts condition {
  if (!condition) {
    throw new Error(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

function signedIn(): Client<paths> {
  check(state.client, "not signed in");
  return state.client;
}

function me(): User {
  check(state.user, "not signed up");
  return state.user;
}

function firstCreated(): News {
  const news = state.created[0];
  check(news, "no news created");
  return news;
}

async function signUp(): Promise<void> {
  const { data, error, response } = await anonymous.POST("/signup", {
    body: { email, password, name: "TS Client" },
  });
  check(response.status === 201 && data, "signup failed", error);
  check(data.email === email && data.name === "TS Client" && data.role === "user", "user", data);
  state.user = data;
}

async function signIn(): Promise<void> {
  const { data, error } = await anonymous.POST("/signin", {
    body: { email: email.toUpperCase(), password },
  });
  check(data, "signin failed", error);
  check(data.token_type === "Bearer" && data.expires_in > 0, "token response", data);
  state.client = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${data.access_token}` },
  });
}

async function whoami(): Promise<void> {
  const { data, error } = await signedIn().GET("/whoami");
  check(data, "whoami failed", error);
  check(data.email === email && data.id === me().id, "whoami answered someone else", data);
  check(data.email_verified === false, "a new account's email is verified already", data);
}

async function createNews(): Promise<void> {
  for (const i of [0, 1, 2]) {
    const { data, error, response } = await signedIn().POST("/news", {
      body: { title: `TypeScript client news ${i}`, body: `Written by run ${run}, item ${i}.` },
    });
    check(response.status === 201 && data, "create failed", error);
    check(data.author_id === me().id, "author", data);
    check(response.headers.get("location")?.endsWith(data.id), "Location header", data);
    state.created.push(data);
  }
}

async function listWithFilterAndCursor(): Promise<void> {
  const client = signedIn();
  const query = { author_id: me().id, limit: 2, order: "date_created_asc" } as const;
  const first = await client.GET("/news", { params: { query } });
  check(first.data, "first page failed", first.error);
  check(first.data.items.length === 2 && typeof first.data.next_cursor === "string", "page 1", first.data);
  const second = await client.GET("/news", {
    params: { query: { ...query, cursor: first.data.next_cursor } },
  });
  check(second.data, "second page failed", second.error);
  check(second.data.items.length === 1 && second.data.next_cursor === null, "page 2", second.data);
  const listed = [...first.data.items, ...second.data.items].map((news) => news.id);
  check(
    JSON.stringify(listed) === JSON.stringify(state.created.map((news) => news.id)),
    "the pages do not list the news created, oldest first",
    listed,
  );
  const searched = await client.GET("/news", {
    params: { query: { author_id: me().id, q: `"item 1" ${run}` } },
  });
  check(searched.data, "search failed", searched.error);
  check(
    searched.data.items.length === 1 && searched.data.items[0]?.id === state.created[1]?.id,
    "search",
    searched.data,
  );
  const counted = await client.GET("/news/count", { params: { query: { author_id: me().id } } });
  check(counted.data?.count === 3 && counted.data?.exact === true, "count", counted.data ?? counted.error);
}

async function update(): Promise<void> {
  const target = firstCreated();
  const { data, error, response } = await signedIn().PATCH("/news/{id}", {
    params: { path: { id: target.id } },
    body: { title: "TypeScript client, updated" },
  });
  check(response.status === 200 && data, "update failed", error);
  check(data.title === "TypeScript client, updated" && data.body === target.body, "updated", data);
  check(response.headers.get("etag"), "ETag header");
}

async function remove(): Promise<void> {
  const target = firstCreated();
  const { error, response } = await signedIn().DELETE("/news/{id}", {
    params: { path: { id: target.id } },
  });
  check(response.status === 204 && error === undefined, "delete failed", error);
  const gone = await signedIn().GET("/news/{id}", { params: { path: { id: target.id } } });
  const problem: Problem | undefined = gone.error;
  check(gone.response.status === 404 && problem?.status === 404, "deleted news still found", gone.data);
}

async function unauthorizedIsATypedProblem(): Promise<void> {
  const stranger = createClient<paths>({ baseUrl, headers: { Authorization: "Bearer not-a-token" } });
  const { data, error, response } = await stranger.GET("/whoami");
  check(data === undefined && response.status === 401, "expected 401", data);
  const problem: Problem = error;
  check(problem.status === 401 && problem.title === "Unauthorized", "problem", problem);
  check(response.headers.get("www-authenticate")?.toLowerCase().startsWith("bearer"), "WWW-Authenticate");
}

async function validationIsATypedProblem(): Promise<void> {
  const { data, error, response } = await signedIn().POST("/news", {
    body: { title: "   ", body: "A blank title is refused." },
  });
  check(data === undefined && response.status === 422, "expected 422", data);
  const problem: Problem = error;
  check(problem.status === 422 && problem.type === "/problems/validation", "problem", problem);
  const fields = (problem.errors ?? []).map((e) => e.field);
  check(JSON.stringify(fields) === JSON.stringify(["title"]), "errors", problem.errors);
}

async function verifyEmail(): Promise<void> {
  const token = await mailedToken(email, "/email/verify");
  const { error, response } = await anonymous.POST("/email/verify", { body: { token } });
  check(response.status === 204, "verifyEmail failed", error);
  check((await whoamiVia(signedIn())).email_verified === true, "the email is not verified");
}

async function updateAccount(): Promise<void> {
  const named = await signedIn().PATCH("/account", { body: { name: "TS Client, renamed" } });
  check(named.response.status === 200 && named.data?.name === "TS Client, renamed", "rename", named.error);
  const untouched = await signedIn().PATCH("/account", { body: {} });
  check(untouched.data?.name === "TS Client, renamed", "an empty patch changed the name", untouched.data);
  const cleared = await signedIn().PATCH("/account", { body: { name: null } });
  check(cleared.response.status === 200 && cleared.data?.name === null, "clear the name", cleared.error);
  check((await whoamiVia(signedIn())).name === null, "the name is still there");
}

async function changePassword(): Promise<void> {
  const wrong = await signedIn().POST("/account/password", {
    body: { current_password: `not it ${run}`, new_password: changedPassword },
  });
  check(wrong.response.status === 403 && wrong.error?.status === 403, "a wrong current password", wrong.error);
  const otherSession = await signInAs(email, password);
  const { error, response } = await signedIn().POST("/account/password", {
    body: { current_password: password, new_password: changedPassword },
  });
  check(response.status === 204, "changePassword failed", error);
  await signInRefused(email, password);
  await signInAs(email, changedPassword);
  // The caller's session stays; every other one ends.
  check((await whoamiVia(signedIn())).email === email, "the caller's session ended");
  check((await whoamiStatus(otherSession)) === 401, "another session survived the change");
}

async function resetForgottenPassword(): Promise<void> {
  const forgot = await anonymous.POST("/password/forgot", { body: { email } });
  check(forgot.response.status === 202, "forgotPassword failed", forgot.error);
  const token = await mailedToken(email, "/password/reset");
  const { error, response } = await anonymous.POST("/password/reset", {
    body: { token, new_password: resetPassword },
  });
  check(response.status === 204, "resetPassword failed", error);
  state.resetToken = token;
  await signInRefused(email, changedPassword);
  // A reset ends every session, the one used so far included.
  check((await whoamiStatus(signedIn())) === 401, "a session survived the reset");
  state.client = await signInAs(email, resetPassword);
}

async function resetTokenReuseIsRefused(): Promise<void> {
  check(state.resetToken, "no reset token");
  const { data, error, response } = await anonymous.POST("/password/reset", {
    body: { token: state.resetToken, new_password: `attacker ${run}` },
  });
  check(data === undefined && response.status === 400, "a used token was taken");
  const problem: Problem | undefined = error;
  check(problem?.status === 400 && problem.type === "/problems/invalid-token", "problem", problem);
  await signInRefused(email, `attacker ${run}`);
  await signInAs(email, resetPassword);
}

async function changeEmail(): Promise<void> {
  const { error, response } = await signedIn().POST("/account/email", {
    body: { new_email: newEmail, current_password: resetPassword },
  });
  check(response.status === 202, "changeEmail failed", error);
  // Nothing changes until the new address confirms.
  check((await whoamiVia(signedIn())).email === email, "the email changed before it was confirmed");
  const token = await mailedToken(newEmail, "/email/verify");
  const toldBefore = mailsTo(email);
  const verified = await anonymous.POST("/email/verify", { body: { token } });
  check(verified.response.status === 204, "verifyEmail failed", verified.error);
  const user = await whoamiVia(signedIn());
  check(user.email === newEmail && user.email_verified, "the new email", user);
  await signInRefused(email, resetPassword);
  state.client = await signInAs(newEmail, resetPassword);
  // The old address is told.
  const deadline = Date.now() + 10_000;
  while (mailsTo(email) <= toldBefore) {
    check(Date.now() < deadline, `no mail to the old address ${email}`);
    await sleep(100);
  }
}

async function deleteAccount(): Promise<void> {
  const wrong = await signedIn().POST("/account/delete", { body: { current_password: `not it ${run}` } });
  check(wrong.response.status === 403 && wrong.error?.status === 403, "a wrong current password", wrong.error);
  const { error, response } = await signedIn().POST("/account/delete", {
    body: { current_password: resetPassword },
  });
  check(response.status === 204, "deleteAccount failed", error);
  await signInRefused(newEmail, resetPassword);
  check((await whoamiStatus(signedIn())) === 401, "the deleted account's token still works");
}

const steps: [string, () => Promise<void>][] = [
  ["sign up", signUp],
  ["sign in", signIn],
  ["whoami", whoami],
  ["create news", createNews],
  ["list with a filter and a cursor", listWithFilterAndCursor],
  ["update", update],
  ["delete", remove],
  ["a 401 is a typed Problem", unauthorizedIsATypedProblem],
  ["a 422 is a typed Problem", validationIsATypedProblem],
  ["verify the email with the link mailed at sign-up", verifyEmail],
  ["set the name, then clear it with null", updateAccount],
  ["change the password", changePassword],
  ["reset a forgotten password with the mailed link", resetForgottenPassword],
  ["a used reset token is 400 invalid-token", resetTokenReuseIsRefused],
  ["change the email with the link mailed to the new address", changeEmail],
  ["delete the account", deleteAccount],
];

let passed = 0;
let failed = 0;
for (const [name, step] of steps) {
  try {
    await step();
  } catch (err) {
    failed += 1;
    console.log(`not ok - ${name}`);
    console.log(err instanceof Error ? (err.stack ?? err.message) : err);
    break; // later steps build on earlier ones
  }
  passed += 1;
  console.log(`ok - ${name}`);
}
failed = steps.length - passed; // a step never reached counts as failed
console.log(`clients-typescript: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
