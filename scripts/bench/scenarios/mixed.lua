-- S8: 90 % reads, 10 % writes. Reads are two thirds GET one item by a random id and one third
-- the first page of the list; writes are POST of a realistic news item.
--   IDS_FILE, TOKENS_FILE  as for read-one.lua
--   WRITE_PCT              share of writes in percent (default 10)
--   STYLE                  newsapi (default) or loopback (paths /news-models…)
--   OUT                    file the JSON summary line is appended to
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local write_pct = tonumber(os.getenv("WRITE_PCT") or "10")
local loopback = (os.getenv("STYLE") or "newsapi") == "loopback"
local one = loopback and "/news-models/" or "/news/"
local list = loopback and "/news-models?filter=%7B%22limit%22%3A20%7D" or "/news?limit=20"
local create = loopback and "/news-models" or "/news"
local ids, tokens
local bodies = {}

setup = lib.setup
function init(args)
  lib.seed()
  ids = lib.lines(os.getenv("IDS_FILE"))
  tokens = lib.lines(os.getenv("TOKENS_FILE"))
  for i = 1, 100 do
    local extra = loopback and ',"date_created":"2026-11-27T12:00:00.000Z"' or ""
    bodies[i] = string.format('{"title":"%s","body":"%s."%s}',
      lib.words(4 + math.random(0, 6)), lib.words(200 + math.random(0, 50)), extra)
  end
end

function request()
  local h = lib.auth_headers(tokens)
  local roll = math.random() * 100
  if roll < write_pct then
    h["Content-Type"] = "application/json"
    return wrk.format("POST", create, h, lib.pick(bodies))
  elseif roll < write_pct + (100 - write_pct) * 2 / 3 then
    return wrk.format("GET", one .. lib.pick(ids), h)
  end
  return wrk.format("GET", list, h)
end

done = lib.done
