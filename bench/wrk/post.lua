-- wrk script: POST form bodies to one path, counting answers by status and OAuth error code.
--
--   wrk ... -s bench/wrk/post.lua URL -- PATH AUTHORIZATION BODIES_FILE
--
-- BODIES_FILE holds one form body per line; each connection walks it round-robin from a
-- random start. done() prints one line "RESULT {json}" for bench/load.py to read.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  path, authorization = args[1], args[2]
  bodies = {}
  for line in io.lines(args[3]) do
    table.insert(bodies, line)
  end
  math.randomseed(os.time() + #threads)
  position = math.random(#bodies)
  answers = {}
  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if authorization ~= "" then
    headers["Authorization"] = authorization
  end
end

function request()
  position = position % #bodies + 1
  return wrk.format("POST", path, headers, bodies[position])
end

function response(status, response_headers, body)
  local key = tostring(status)
  if status >= 400 then
    local code = body:match('"error"%s*:%s*"([%w_]+)"')
    if code then
      key = key .. " " .. code
    end
  end
  answers[key] = (answers[key] or 0) + 1
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', "") .. '"'
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("answers")) do
      totals[key] = (totals[key] or 0) + count
    end
  end
  local parts = {}
  for key, count in pairs(totals) do
    table.insert(parts, json_string(key) .. ":" .. count)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"answers":{%s},' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, table.concat(parts, ","),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
