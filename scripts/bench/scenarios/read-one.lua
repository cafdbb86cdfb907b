-- S1 / S6 / S7: GET one news item by a random id, with a random bearer token.
--   IDS_FILE     ids, one a line (UUIDs for newsapi, integers for the LoopBack anchor)
--   TOKENS_FILE  access tokens, one a line
--   BAD_TOKEN    if set, send this token instead (S6: a well-formed JWT with a wrong signature)
--   PREFIX       path before the id: /news/ (default) or /news-models/
--   OUT          file the JSON summary line is appended to
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local prefix = os.getenv("PREFIX") or "/news/"
local bad = os.getenv("BAD_TOKEN")
local ids, tokens

setup = lib.setup
function init(args)
  lib.seed()
  ids = lib.lines(os.getenv("IDS_FILE"))
  if not (bad and bad ~= "") then tokens = lib.lines(os.getenv("TOKENS_FILE")) end
end

function request()
  return wrk.format("GET", prefix .. lib.pick(ids), lib.auth_headers(tokens, bad))
end

done = lib.done
