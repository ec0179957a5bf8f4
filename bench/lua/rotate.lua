-- A different valid token on every request (run the service with --no-token-cache for the
-- cold path: the cache would otherwise hold them all after one pass).
local c = dofile("bench/lua/common.lua")
local reqs, i = {}, 0
function init()
   for _, t in ipairs(c.lines("tokens-many.txt")) do reqs[#reqs + 1] = c.request("Bearer " .. t) end
end
function request()
   i = i % #reqs + 1
   return reqs[i]
end
done = c.done
