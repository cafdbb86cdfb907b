-- S2: GET /news?limit=20 with a token, following next_cursor for up to PAGES pages.
--   TOKENS_FILE  access tokens, one a line
--   PAGES        pages per walk, first page included (default 5)
--   STYLE        cursor (newsapi: next_cursor from the body) or
--                skip (LoopBack anchor: /news-models?filter={"limit":20,"skip":20*k})
--   ACCEPT_ENCODING  sent as Accept-Encoding when set (S2gz/S2br/S2zst; the cursor is inside the
--                compressed body, so those run with PAGES=1)
--   OUT          file the JSON summary line is appended to
-- wrk asks each thread for requests without saying which connection they go to, so a walk is
-- per thread rather than per connection: every page answered queues its next_cursor, and the
-- next request takes a queued cursor if there is one, else starts a new walk at the first page.
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local pages = tonumber(os.getenv("PAGES") or "5")
local style = os.getenv("STYLE") or "cursor"
local accept_encoding = os.getenv("ACCEPT_ENCODING") or ""
local tokens
local queue, head, tail = {}, 1, 0 -- cursors (newsapi) or page numbers (skip), with their depth
local sent_depth = {}               -- depth of requests in flight, in order (FIFO per thread)
local sent_head, sent_tail = 1, 0

setup = lib.setup
function init(args)
  lib.seed()
  tokens = lib.lines(os.getenv("TOKENS_FILE"))
end

local function remember(depth)
  sent_tail = sent_tail + 1
  sent_depth[sent_tail] = depth
end

function request()
  local h = lib.auth_headers(tokens)
  if accept_encoding ~= "" then h["Accept-Encoding"] = accept_encoding end
  if style == "skip" then
    local page = math.random(0, pages - 1)
    local filter = string.format('{"limit":20,"skip":%d}', page * 20)
    local enc = filter:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end)
    return wrk.format("GET", "/news-models?filter=" .. enc, h)
  end
  if head <= tail then
    local item = queue[head]; queue[head] = nil; head = head + 1
    remember(item[2])
    return wrk.format("GET", "/news?limit=20&cursor=" .. item[1], h)
  end
  remember(1)
  return wrk.format("GET", "/news?limit=20", h)
end

-- The body's last field is next_cursor (~40 KB of items come first). A pattern match over the
-- whole body cost wrk ~160 us of CPU per page, as much as the server spent answering it, on the
-- same two cores; a plain search of the tail costs next to nothing.
local KEY = '"next_cursor":"'
local function next_cursor(body)
  local at = body:find(KEY, math.max(1, #body - 512), true) or body:find(KEY, 1, true)
  if not at then return nil end
  local from = at + #KEY
  local to = body:find('"', from, true)
  return to and body:sub(from, to - 1)
end

if style ~= "skip" then
  function response(status, headers, body)
    -- Depths are matched to answers in order; with many connections per thread this pairs an
    -- answer with some walk's depth, which keeps the mix of page depths right on average.
    local depth = sent_depth[sent_head] or 1
    sent_depth[sent_head] = nil
    sent_head = sent_head + 1
    if status == 200 and depth < pages then
      local cursor = next_cursor(body)
      if cursor then
        tail = tail + 1
        queue[tail] = {cursor, depth + 1}
      end
    end
  end
end

done = lib.done
