-- One fixed GET with a token: a page deep in the feed (a cursor made once beforehand) or a count
-- (`make bench-scale`).
--   PATH_ONE     the path and query, e.g. /news/count?q=kalomi
--   TOKENS_FILE  access tokens, one a line
--   OUT          file the JSON summary line is appended to
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local path = os.getenv("PATH_ONE")
local tokens

setup = lib.setup
function init(args)
  lib.seed()
  assert(path and path:sub(1, 1) == "/", "PATH_ONE must be a path (see the script's header)")
  tokens = lib.lines(os.getenv("TOKENS_FILE"))
end

function request()
  return wrk.format("GET", path, lib.auth_headers(tokens))
end

done = lib.done
