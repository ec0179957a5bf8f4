-- Nine valid requests, then one invalid, alternating a forged and an expired token.
local c = dofile("bench/lua/common.lua")
local valid, invalid, i = nil, {}, 0
function init()
   valid = c.bearer(c.first("token-valid.txt"))
   invalid[1] = c.bearer(c.first("token-badsig.txt"))
   invalid[2] = c.bearer(c.first("token-expired.txt"))
end
function request()
   i = i + 1
   if i % 10 == 0 then return invalid[(i / 10) % 2 + 1] end
   return valid
end
done = c.done
