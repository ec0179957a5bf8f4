-- clerk-forward-auth for HAProxy >= 2.6: an `http-request` action that asks
-- clerk-forward-auth about every request, through HAProxy's own `core.httpclient`.
-- Loaded by `lua-load` in haproxy.cfg, which says how it is called:
--
--   http-request  lua.clerk-forward-auth <auth URL, ending in ?proxy=haproxy>
--   http-request  deny deny_status 500 unless { var(txn.clerk_fa_allowed) -m bool }
--   http-response lua.clerk-forward-auth-cookies
--
-- 200 from the check: the identity headers are put on the request to the app, and any
-- Set-Cookie goes to the client with the app's response. Anything else: the client gets
-- the check's answer (status, headers, body), and the app is never reached.

-- The identity clerk-forward-auth answers with. Each is deleted from the client's request
-- first, so only the check can ever set one.
local IDENTITY = {
  "x-auth-user-id", "x-auth-session-id", "x-auth-org-id", "x-auth-org-role",
  "x-auth-org-slug", "x-auth-org-permissions", "x-auth-actor-id",
}

-- The client headers the check reads (the credentials, and what tells a page load from
-- an API call). An allow-list, not "everything but": a client's X-Original-URL,
-- X-Forwarded-*, Content-Length or body framing never reaches the check.
local FORWARD = {
  "cookie", "authorization", "accept", "sec-fetch-dest", "referer", "origin", "user-agent",
}

-- Headers of the check's answer that describe that one connection, not the answer: the
-- reply to the client gets its own (HAProxy computes content-length for a Lua reply).
local HOP_BY_HOP = {
  ["connection"] = true, ["keep-alive"] = true, ["proxy-connection"] = true,
  ["transfer-encoding"] = true, ["te"] = true, ["trailer"] = true, ["upgrade"] = true,
  ["content-length"] = true,
}

-- How long one attempt may take, in milliseconds. HAProxy 2.6's httpclient retries a
-- failed attempt (refused, dropped or timed out) 3 more times, and 2.6 cannot change that,
-- so a check that never answers costs the client about 4x this. /verify answers in
-- milliseconds; the margin is for its rare JWKS refetch.
local TIMEOUT_MS = 2000

-- A header's values in order. HAProxy hands them over as a table indexed from 0, which
-- ipairs() would skip, so read every integer key in order.
local function values(v)
  if v == nil then return {} end
  if type(v) == "string" then return { v } end
  local keys = {}
  for k in pairs(v) do
    if type(k) == "number" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = v[k] end
  return out
end

-- Ends the transaction with our own answer: the app is not reached.
local function refuse(txn, status, text)
  local reply = txn:reply()
  reply:set_status(status)
  reply:add_header("content-type", "text/plain")
  reply:add_header("cache-control", "no-store")
  reply:set_body(text .. "\n")
  txn:done(reply)
end

-- The headers of the check request: the allow-listed client headers, plus the original
-- request, which clerk-forward-auth (CLERK_FA_FORWARDED_HEADERS=x-forwarded) rebuilds from
-- exactly these four. They are computed here from HAProxy's own view of the request, never
-- copied from the client, so a forged X-Forwarded-Uri cannot change a decision.
local function check_headers(txn, host)
  local client = txn.http:req_get_headers()
  local headers = {}
  for _, name in ipairs(FORWARD) do
    local vals = values(client[name])
    if #vals > 0 then
      -- One Cookie header, as a browser sends it (HTTP/2 may split it into several).
      if name == "cookie" then vals = { table.concat(vals, "; ") } end
      headers[name] = vals
    end
  end
  headers["x-forwarded-method"] = { txn.f:method() }
  -- The scheme the client used to reach HAProxy. Behind another TLS terminator, this
  -- reads "http": set it from that terminator's trusted header instead.
  -- (A boolean fetch reaches Lua as the number 0 or 1, and 0 is true in Lua: compare.)
  local tls = txn.f:ssl_fc()
  headers["x-forwarded-proto"] = { (tls == true or tls == 1) and "https" or "http" }
  headers["x-forwarded-host"] = { host }
  -- Path and query exactly as received, without a scheme or authority.
  headers["x-forwarded-uri"] = { txn.f:pathq() }
  return headers
end

core.register_action("clerk-forward-auth", { "http-req" }, function(txn, url)
  -- A forged identity never survives, whatever the check answers.
  for _, name in ipairs(IDENTITY) do txn.http:req_del_header(name) end

  -- The host the client asked for (HAProxy fills Host from :authority for HTTP/2, and
  -- refuses an absolute URI that disagrees with it). Without one (HTTP/1.0 allows that),
  -- the service would read the check's own Host instead, and host-scoped rules would judge
  -- the wrong host: refuse.
  local host = txn.f:req_fhdr("host")
  if host == nil or host == "" then
    refuse(txn, 400, "a Host header is required")
    return
  end

  -- GET with no body: the request body stays with HAProxy for the app. pcall: an error
  -- here must end in a refusal, never in the request carrying on.
  local ok, res = pcall(function()
    return core.httpclient():get{ url = url, headers = check_headers(txn, host), timeout = TIMEOUT_MS }
  end)
  if not ok or type(res) ~= "table" or type(res.status) ~= "number" or res.status == 0 then
    -- No answer at all. (When the service is down, hangs up or is too slow, HAProxy 2.6's
    -- httpclient usually makes its own 503, 502 or 504 page instead, passed on below:
    -- denied either way.)
    core.Warning("clerk-forward-auth: no answer from " .. tostring(url) .. ": " .. tostring(res))
    refuse(txn, 503, "authentication service unavailable")
    return
  end

  if res.status == 200 then
    -- Allowed. Empty means unknown: leave the header absent, as nginx does, so an app
    -- testing for its presence is not fooled.
    for _, name in ipairs(IDENTITY) do
      local value = values(res.headers[name])[1]
      if value ~= nil and value ~= "" then txn.http:req_set_header(name, value) end
    end
    -- Cookies for the client (a refreshed session): kept until the app answers, one per
    -- line (a header value cannot hold a newline), for clerk-forward-auth-cookies below.
    local cookies = values(res.headers["set-cookie"])
    if #cookies > 0 then txn:set_var("txn.clerk_fa_cookies", table.concat(cookies, "\n")) end
    -- The config denies every request without this mark: if this function fails before
    -- here, the request is refused rather than let through.
    txn:set_var("txn.clerk_fa_allowed", true)
    return
  end

  -- 401, 403, 307 (sign-in or Clerk's handshake), 503...: the client gets the check's own
  -- answer, every header included (several Set-Cookie stay separate headers).
  local reply = txn:reply()
  if type(res.reason) == "string" and res.reason ~= "" then
    reply:set_status(res.status, res.reason)
  else
    reply:set_status(res.status)
  end
  for name, vals in pairs(res.headers or {}) do
    if not HOP_BY_HOP[name] then
      for _, value in ipairs(values(vals)) do reply:add_header(name, value) end
    end
  end
  reply:set_body(res.body or "")
  txn:done(reply)
end, 1)

-- Adds the cookies the check sent with its 200 to the app's response, each as its own
-- Set-Cookie header.
core.register_action("clerk-forward-auth-cookies", { "http-res" }, function(txn)
  local cookies = txn:get_var("txn.clerk_fa_cookies")
  if cookies == nil then return end
  for cookie in string.gmatch(cookies, "[^\n]+") do
    txn.http:res_add_header("set-cookie", cookie)
  end
end)
