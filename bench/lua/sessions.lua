-- Many signed-in browsers at once: the first SESSIONS (default 200) tokens of
-- tokens-many.txt in turn, each sent again every SESSIONS requests. How many concurrent
-- sessions a worker's table of recent tokens serves before they crowd each other out.
local c = dofile("bench/lua/common.lua")
local reqs, i = {}, 0
function init()
   local limit = tonumber(os.getenv("SESSIONS") or "200")
   for _, t in ipairs(c.lines("tokens-many.txt")) do
      if #reqs >= limit then break end
      reqs[#reqs + 1] = c.request("Bearer " .. t)
   end
end
function request()
   i = i % #reqs + 1
   return reqs[i]
end
done = c.done
