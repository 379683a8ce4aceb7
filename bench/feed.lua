-- wrk script: GET /v1/feed as many viewers, first pages and cursor pages mixed.
-- BENCH_FEED_LOAD: a file of "<bearer token>\t<path and query>" lines written by
-- bench/feed.py, the same samples pgbench draws from (bench_load_new / bench_load_top).
local samples = {}
local threads = {}
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("BENCH_FEED_LOAD")) do
    local token, path = line:match("^([^\t]+)\t(.+)$")
    if token then
      samples[#samples + 1] = { ["Authorization"] = "Bearer " .. token, path = path }
    end
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
end

function request()
  local s = samples[math.random(#samples)]
  return wrk.format("GET", s.path, { ["Authorization"] = s["Authorization"] })
end

function done(summary, latency, requests)
  -- the same BENCH_JSON line as bench/submit.lua: counts, and the latency distribution
  -- as 1000 quantile midpoints (microseconds) so that several wrk processes merge
  local e = summary.errors
  local grid = {}
  for i = 0, 999 do grid[#grid + 1] = latency:percentile((i + 0.5) / 10) end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"max_us":%d,"grid":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.max, table.concat(grid, ",")))
end
