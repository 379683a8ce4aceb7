-- wrk script: POST /v1/generate/image as many users, a fresh Idempotency-Key each time.
-- BENCH_TOKENS: a file of bearer tokens, one a line; BENCH_PREFIX: unique per run.
local tokens = {}
local counter = 0
local prefix = os.getenv("BENCH_PREFIX") or "wrk"
local body = '{"model":"flux-schnell","prompt":"a lighthouse at dusk","width":512,"height":512}'
local threads = {}
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  counter = counter + 1
  local token = tokens[math.random(#tokens)]
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. (tid or 0) .. "-" .. counter,
  }, body)
end

function done(summary, latency, requests)
  -- one JSON line: counts, and the latency distribution as 1000 quantile midpoints
  -- (microseconds) so runs against several API processes can be merged
  local e = summary.errors
  local grid = {}
  for i = 0, 999 do grid[#grid + 1] = latency:percentile((i + 0.5) / 10) end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"max_us":%d,"grid":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.max, table.concat(grid, ",")))
end
