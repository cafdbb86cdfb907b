// Shared by the pages the mailed links open (pasted into each page's script by pages.rs). The
// token is read from the address, which then loses it (history, bookmarks and screenshots never
// show it), and goes nowhere but the page's one POST to this server.
const token = new URLSearchParams(location.search).get("token") ?? "";
if (location.search !== "") history.replaceState(null, "", location.pathname);
const outcome = document.getElementById("outcome");

const NO_TOKEN =
  "This page needs the link from the mail, as it was sent: open that link again.";
const INVALID_TOKEN =
  "This link no longer works (used, expired or replaced by a newer one); ask for a new one.";
const FIELDS = { new_password: "The new password", token: "The link's token" };

// Shows `text` under the form: a success (`ok` true), what to do about a failure (`ok` false), or
// what is under way (`ok` left out).
function show(text, ok) {
  outcome.textContent = text;
  outcome.className = ok === undefined ? "" : ok ? "ok" : "failed";
}

// POSTs `body` as JSON to `path` (relative: this server, whatever its address) and answers
// `{ ok: true }` for a 2xx, else `{ ok: false, text }`, the failure in words.
async function send(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    return { ok: false, text: "The server could not be reached; try again in a moment." };
  }
  if (response.ok) return { ok: true };
  const problem = await response.json().catch(() => ({}));
  return { ok: false, text: explain(response, problem ?? {}) };
}

// A problem+json answer in words.
function explain(response, problem) {
  const status = response.status;
  if (status === 400 && String(problem.type ?? "").endsWith("/problems/invalid-token")) {
    return INVALID_TOKEN;
  }
  if (status === 422 && Array.isArray(problem.errors) && problem.errors.length > 0) {
    return problem.errors
      .map((error) => `${FIELDS[error.field] ?? error.field}: ${error.message}.`)
      .join(" ");
  }
  if (status === 429 || status === 503) {
    const seconds = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
    const why = status === 429 ? "Too many attempts" : "The server is busy";
    return Number.isFinite(seconds)
      ? `${why}: try again in ${seconds} second${seconds === 1 ? "" : "s"}.`
      : `${why}: try again in a moment.`;
  }
  return problem.detail ?? `The server answered ${status}; try again later.`;
}
