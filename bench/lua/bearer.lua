-- The same valid token every time: a browser's repeated token.
local c = dofile("bench/lua/common.lua")
local req
function init() req = c.bearer(c.first("token-valid.txt")) end
function request() return req end
done = c.done
