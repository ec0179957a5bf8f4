-- A different valid token on every request (run the service with --no-token-cache for the
-- cold path: the cache would otherwise hold them all after one pass). SESSIONS=N sends only
-- the first N in turn instead: N browsers at once, which shows how many concurrent sessions
-- a worker's table of recent tokens serves before they crowd each other out.
local c = dofile("bench/lua/common.lua")
local reqs, i = {}, 0
function init()
   local limit = tonumber(os.getenv("SESSIONS") or "") or math.huge
   for _, t in ipairs(c.lines("tokens-many.txt")) do
      if #reqs >= limit then break end
      reqs[#reqs + 1] = c.bearer(t)
   end
end
function request()
   i = i % #reqs + 1
   return reqs[i]
end
done = c.done
