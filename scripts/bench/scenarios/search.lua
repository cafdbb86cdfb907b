-- S3: GET /news?q=<word>&limit=20 with a token, a random word of WORDS_FILE each time.
--   TOKENS_FILE  access tokens, one a line
--   WORDS_FILE   search words, one a line
--   STYLE        fts (newsapi, default) or ilike (LoopBack anchor: no full-text search, so a
--                filter {"where":{"or":[{"title":{"ilike":"%w%"}},{"body":{"ilike":"%w%"}}]},"limit":20})
--   OUT          file the JSON summary line is appended to
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local style = os.getenv("STYLE") or "fts"
local tokens, words

setup = lib.setup
function init(args)
  lib.seed()
  tokens = lib.lines(os.getenv("TOKENS_FILE"))
  words = lib.lines(os.getenv("WORDS_FILE"))
end

local function urlencode(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function request()
  local word = lib.pick(words)
  local h = lib.auth_headers(tokens)
  if style == "ilike" then
    local filter = string.format(
      '{"where":{"or":[{"title":{"ilike":"%%%s%%"}},{"body":{"ilike":"%%%s%%"}}]},"limit":20}', word, word)
    return wrk.format("GET", "/news-models?filter=" .. urlencode(filter), h)
  end
  return wrk.format("GET", "/news?limit=20&q=" .. urlencode(word), h)
end

done = lib.done
