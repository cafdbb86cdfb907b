-- Shared helpers for the wrk scripts in scripts/bench/scenarios/ (wrk 4 embeds LuaJIT).
--
-- Each scenario script starts with
--   package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
--   local lib = require("lib")
-- and ends with `done = lib.done`, which appends one JSON line to $OUT (or prints it).
local M = {}

-- Reads a file into a list of its non-empty lines; fails loudly if the file is missing.
function M.lines(path)
  assert(path and path ~= "", "a file path is required (see the script's header)")
  local list = {}
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  for line in f:lines() do
    if line ~= "" then list[#list + 1] = line end
  end
  f:close()
  assert(#list > 0, path .. " is empty")
  return list
end

function M.pick(list)
  return list[math.random(#list)]
end

-- Per-thread numbering, so that each thread seeds its generator differently.
local thread_no = 0
function M.setup(thread)
  thread_no = thread_no + 1
  thread:set("tno", thread_no)
end

function M.seed()
  math.randomseed(os.time() * 1000 + (tno or 0) * 7919 + math.floor(os.clock() * 1e6))
  -- LuaJIT's first values after seeding are poorly mixed.
  for _ = 1, 10 do math.random() end
end

-- "Authorization: Bearer …" with a random token of $TOKENS_FILE, or the one in $BAD_TOKEN.
function M.auth_headers(tokens, bad)
  local h = {}
  if bad and bad ~= "" then
    h["Authorization"] = "Bearer " .. bad
  elseif tokens then
    h["Authorization"] = "Bearer " .. M.pick(tokens)
  end
  return h
end

function M.json_escape(s)
  return (s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end))
end

-- Text like the seed's (scripts/bench/seed.sql): pseudo-words from a 20 000-word vocabulary with
-- density ~ 1/rank, the same rank -> word mapping, so that created news look like seeded ones to
-- the full-text index and to searches.
local syllables = {"ka","lo","mi","ne","ru","sa","ti","vo","ba","de","fi","go","hu","ja","ke","li",
                   "mo","na","pe","ri","so","tu","va","we","xi","yo","za","bo","ce","da","fu","ge"}
local ln_vocab = math.log(20000)
function M.word()
  local rank = math.max(1, math.min(20000, math.floor(math.exp(math.random() * ln_vocab))))
  local w = (rank * 7919) % 32768
  return syllables[1 + w % 32] .. syllables[1 + math.floor(w / 32) % 32] ..
         syllables[1 + math.floor(w / 1024) % 32]
end

function M.words(n)
  local out = {}
  for i = 1, n do out[i] = M.word() end
  return table.concat(out, " ")
end

function M.done(summary, latency, requests)
  local e = summary.errors
  local line = string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.2f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"max_ms":%.3f,"mean_ms":%.3f,"non2xx":%d,"connect_err":%d,"read_err":%d,"write_err":%d,' ..
    '"timeout_err":%d,"bytes":%d}',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes)
  local out = os.getenv("OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "a")); f:write(line .. "\n"); f:close()
  else
    io.write("SUMMARY " .. line .. "\n")
  end
end

return M
