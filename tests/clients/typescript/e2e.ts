// End-to-end script for the TypeScript client generated from openapi.yaml: openapi-typescript
// writes the types (generated/schema.d.ts), openapi-fetch is the typed fetch client over them.
//
// Runs against the server at BASE_URL (tests/clients/typescript/run.sh starts one): sign up, sign
// in, whoami, create news, list them with a filter and a cursor, update one, delete it, and check
// that a 401 and a 422 come back as typed `Problem` errors. Prints one line per step and, last,
// `clients-typescript: N passed, M failed`.

import { randomBytes } from "node:crypto";
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
const run = randomBytes(4).toString("hex");
const email = `typescript-client-${run}@example.com`;
const password = `generated typescript client ${run}`;

const anonymous: Client<paths> = createClient<paths>({ baseUrl });

interface State {
  user?: User;
  client?: Client<paths>;
  created: News[];
}
const state: State = { created: [] };

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
  check(counted.data?.count === 3, "count", counted.data ?? counted.error);
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
