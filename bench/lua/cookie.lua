-- A browser's fetch() with its session cookies (`__client_uat` and `__session`), the same
-- every time: the cookie path, which Clerk checks more than a Bearer token.
local c = dofile("bench/lua/common.lua")
local req
function init() req = c.request({ ["Cookie"] = c.first("cookie-valid.txt") }) end
function request() return req end
done = c.done
