-- S4: POST /news with a token and a news item of realistic size (title ~50 characters, body
-- ~1.5 KB of pseudo-words, like the seed).
--   TOKENS_FILE  access tokens, one a line
--   PATH_CREATE  /news (default) or /news-models (LoopBack anchor; it gets date_created too)
--   OUT          file the JSON summary line is appended to
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local path = os.getenv("PATH_CREATE") or "/news"
local tokens
local bodies = {}

setup = lib.setup
function init(args)
  lib.seed()
  tokens = lib.lines(os.getenv("TOKENS_FILE"))
  -- A few hundred ready-made bodies, so that the load generator spends its time sending.
  for i = 1, 200 do
    local title = lib.words(4 + math.random(0, 6))
    local text = lib.words(200 + math.random(0, 50)) .. "."
    local extra = path == "/news" and "" or ',"date_created":"2026-11-27T12:00:00.000Z"'
    bodies[i] = string.format('{"title":"%s","body":"%s"%s}', title, text, extra)
  end
end

function request()
  local h = lib.auth_headers(tokens)
  h["Content-Type"] = "application/json"
  return wrk.format("POST", path, h, lib.pick(bodies))
end

done = lib.done
