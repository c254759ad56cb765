-- wrk script: POST prepared request bodies, one per line of a file, cycling through them.
-- A line is either a JSON body, or an API key, a tab, then the JSON body (sent as
-- "Authorization: Bearer KEY"). At the end it prints one JSON line of figures.
--   wrk -t 2 -c 16 -d 10s -s wrk_requests.lua URL -- requests.tsv
local lines = {}
local n = 0
local i = 0
local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("offset", thread_no * 7919)
end

function init(args)
  local path = args[1]
  if path == nil then error("usage: wrk ... -s wrk_requests.lua URL -- FILE") end
  for line in io.lines(path) do
    if #line > 0 then
      local key, body = line:match("^([^\t]*)\t(.*)$")
      if key == nil then key, body = "", line end
      local headers = { ["Content-Type"] = "application/json" }
      if #key > 0 then headers["Authorization"] = "Bearer " .. key end
      n = n + 1
      lines[n] = wrk.format("POST", nil, headers, body)
    end
  end
  if n == 0 then error("no requests in " .. path) end
  i = (offset or 0) % n
end

function request()
  i = i % n + 1
  return lines[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "req_per_s": %.1f, "p50_ms": %.3f, "p95_ms": %.3f, ' ..
    '"p99_ms": %.3f, "max_ms": %.3f, "errors": %d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
