-- wrk script: POST /v1 with one videoInference task (480x480, 1 s) and a fresh taskUUID each.
local key = os.getenv("BENCH_KEY") or "bench-key"
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
end

local function uuid4()
  local t = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
  return (string.gsub(t, "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end))
end

function request()
  local body = '[{"taskType":"videoInference","taskUUID":"' .. uuid4() ..
    '","model":"xai:grok-imagine@video","positivePrompt":"bench","width":480,' ..
    '"height":480,"duration":1}]'
  return wrk.format("POST", "/v1", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end

-- wrk counts status >= 400 in summary.errors.status (its own "Non-2xx" line); 3xx would slip
-- through, but this endpoint never redirects. Socket errors are reported separately.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
