-- S5: POST /signin with valid credentials, a random account of CREDS_FILE each time.
--   CREDS_FILE  "email<TAB>password", one account a line
--   OUT         file the JSON summary line is appended to
package.path = (os.getenv("BENCH_LUA_DIR") or "scripts/bench/scenarios") .. "/?.lua;" .. package.path
local lib = require("lib")
local bodies = {}

setup = lib.setup
function init(args)
  lib.seed()
  for _, line in ipairs(lib.lines(os.getenv("CREDS_FILE"))) do
    local email, password = line:match("^([^\t]+)\t(.+)$")
    bodies[#bodies + 1] = string.format('{"email":"%s","password":"%s"}',
      lib.json_escape(email), lib.json_escape(password))
  end
end

function request()
  return wrk.format("POST", "/signin", {["Content-Type"] = "application/json"}, lib.pick(bodies))
end

done = lib.done
