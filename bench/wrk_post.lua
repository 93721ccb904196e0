-- wrk script of the load benchmark (bench/load.py): POST a token request with the session cookie, the
-- CSRF header and a JSON body, count the answers by status, and print one JSON line at the end.
--
--   WRK_COOKIE="sessionid=…; csrftoken=…" WRK_CSRF=… WRK_BODY='{}' \
--     wrk -t2 -c64 -d10s --timeout 30s -s bench/wrk_post.lua http://127.0.0.1:8000/rt/transcription-sessions/
--
-- Every variable is optional (the floor and the Express route need none of them).

wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local cookie = os.getenv("WRK_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
local csrf = os.getenv("WRK_CSRF")
if csrf and csrf ~= "" then
  wrk.headers["X-CSRFToken"] = csrf
end
-- What a browser sends with a POST; Django's CSRF check compares it with the Host (scheme://host:port).
local origin = os.getenv("WRK_ORIGIN")
if origin and origin ~= "" then
  wrk.headers["Origin"] = origin
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local thread_statuses = thread:get("statuses")
    for status, count in pairs(thread_statuses) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "statuses": {%s}, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end
