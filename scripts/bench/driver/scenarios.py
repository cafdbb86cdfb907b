"""The scenarios: what each sends (its wrk script and the environment that script reads), at how
many connections, against which targets."""

# name, label, script, connections (None: CONNS; "signin": SIGNIN_CONNS; or a number), which
# targets run it.
# Targets: "newsapi" (production bcrypt cost), "newsapi_c10" (a second server of the same binary
# with BCRYPT_COST=10, same database; sign-in only), "loopback" (the anchor), "pocketbase" (the
# PocketBase anchor, driven by its own bench.lua: the target's "script" replaces the one named here).
PB = "pocketbase"
SCENARIOS = [
    ("S1", "GET /news/{id}, token, random ids", "read-one.lua", None, ["newsapi", "loopback", PB]),
    ("S2", "GET /news?limit=20, following next_cursor (5 pages)", "list.lua", None,
     ["newsapi", "loopback", PB]),
    ("S2s", "PocketBase's list without the total (skipTotal=1, pages 1..5)", "list.lua", None, [PB]),
    # A first page (~40 KB of JSON) as it is and compressed (D11): S2's walk needs next_cursor from
    # the body, which wrk cannot read once compressed, so these four stop at the first page.
    ("S2p1", "S2's first page only, as it is (the reference for S2gz/S2br/S2zst)", "list.lua",
     None, ["newsapi"]),
    ("S2gz", "S2p1 with Accept-Encoding: gzip", "list.lua", None, ["newsapi"]),
    ("S2br", "S2p1 with Accept-Encoding: br", "list.lua", None, ["newsapi"]),
    ("S2zst", "S2p1 with Accept-Encoding: zstd", "list.lua", None, ["newsapi"]),
    ("S3", "GET /news?q=<word>&limit=20 (100k rows)", "search.lua", None, ["newsapi", "loopback"]),
    ("S3c4", "S3 at 4 connections (a search's own latency, little queueing)", "search.lua", 4,
     ["newsapi"]),
    ("S4", "POST /news (~1.5 KB body)", "create.lua", None, ["newsapi", "loopback", PB]),
    ("S5", "POST /signin, valid credentials", "signin.lua", "signin",
     ["newsapi", "newsapi_c10", "loopback", PB]),
    ("S6", "GET /news/{id}, bad token (401)", "read-one.lua", None, ["newsapi", "loopback", PB]),
    ("S7a", "S1 at 16 connections, alone", "read-one.lua", "signin", ["newsapi", "loopback", PB]),
    ("S7b", "S1 at 16 connections, during S5 (16 conns)", "read-one.lua", "signin",
     ["newsapi", "loopback", PB]),
    ("S8", "mixed: 60% one, 30% list, 10% create", "mixed.lua", None, ["newsapi", "loopback"]),
]
# What the PocketBase anchor's requests are where they differ from newsapi's (its bench.lua).
PB_LABELS = {
    "S1": "GET /api/collections/news/records/{id}, token",
    "S2": "GET …/news/records?page=1..5&perPage=20&sort=-created, token (offset, with COUNT)",
    "S4": "POST /api/collections/news/records (~1.5 KB, author = caller)",
    "S5": "POST /api/collections/users/auth-with-password (bcrypt cost 10)",
    "S6": "GET …/news/records/{id}, bad token (404: the caller becomes a guest)",
}
EXPECT_NON2XX = {"S6"}  # PocketBase answers S6 with 404: a bad token makes the caller a guest


def pocketbase_env(t, scenario):
    """The environment of the PocketBase anchor's bench.lua (see its header) for a scenario."""
    files = t["files"]
    mode = {"S2": "list", "S2s": "list", "S4": "post_news", "S5": "signin"}.get(scenario,
                                                                                 "get_by_id")
    env = {"MODE": mode}
    if mode == "get_by_id":
        env["IDS_FILE"] = files["ids"]
    if scenario == "S6":
        env["BAD_TOKEN"] = t["bad_token"]
    elif mode == "signin":
        env["CREDS_FILE"] = files["creds"]
    else:
        env["TOKENS_FILE"] = files["tokens"]
    if mode == "list":
        env.update(PAGES="5", SKIP_TOTAL="1" if scenario == "S2s" else "0")
    return env


# The first-page scenarios and the Accept-Encoding each sends ("" sends none).
ACCEPT_ENCODING = {"S2p1": "", "S2gz": "gzip", "S2br": "br", "S2zst": "zstd"}


def lua_env(setup, target, scenario):
    t = setup["targets"][target]
    if target == PB:
        return pocketbase_env(t, scenario)
    files = t["files"]
    loop = target == "loopback"
    env = {}
    if scenario in ("S1", "S6", "S7a", "S7b", "S8"):
        env.update(IDS_FILE=files["ids"], TOKENS_FILE=files["tokens"],
                   PREFIX="/news-models/" if loop else "/news/")
    if scenario == "S6":
        env["BAD_TOKEN"] = t["bad_token"]
    if scenario == "S2":
        env.update(TOKENS_FILE=files["tokens"], STYLE="skip" if loop else "cursor", PAGES="5")
    if scenario in ACCEPT_ENCODING:
        env.update(TOKENS_FILE=files["tokens"], STYLE="cursor", PAGES="1",
                   ACCEPT_ENCODING=ACCEPT_ENCODING[scenario])
    if scenario in ("S3", "S3c4"):
        env.update(TOKENS_FILE=files["tokens"], WORDS_FILE=files["words"],
                   STYLE="ilike" if loop else "fts")
    if scenario == "S4":
        env.update(TOKENS_FILE=files["tokens"], PATH_CREATE="/news-models" if loop else "/news")
    if scenario == "S5":
        env["CREDS_FILE"] = files["creds"]
    if scenario == "S8":
        env["STYLE"] = "loopback" if loop else "newsapi"
    return env
