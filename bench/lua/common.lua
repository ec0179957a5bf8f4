-- Shared by the scenarios: reads token files and prints a summary line.
local M = {}
M.dir = os.getenv("TOKENS") or "bench/tokens"

function M.lines(name)
   local t = {}
   for line in io.lines(M.dir .. "/" .. name) do
      if #line > 0 then t[#t + 1] = line end
   end
   return t
end

function M.first(name) return M.lines(name)[1] end

-- The original request as a proxy would describe it (Traefik's headers), carrying the
-- credentials in `extra` (an Authorization or a Cookie header).
function M.request(extra)
   local headers = {
      ["Host"] = wrk.headers["Host"],
      ["X-Forwarded-Method"] = "GET",
      ["X-Forwarded-Proto"] = "https",
      ["X-Forwarded-Host"] = "app.example.com",
      ["X-Forwarded-Uri"] = "/api/items?page=2",
      ["Accept"] = "application/json",
      ["Sec-Fetch-Dest"] = "empty",
   }
   for name, value in pairs(extra) do headers[name] = value end
   return wrk.format("GET", wrk.path, headers)
end

function M.bearer(token) return M.request({ ["Authorization"] = "Bearer " .. token }) end

function M.done(summary, latency, requests)
   local secs = summary.duration / 1e6
   io.write(string.format("req/s %.0f  requests %d  p50 %.2f ms  p99 %.2f ms  non-2xx %d  errors %d\n",
      summary.requests / secs, summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

return M
