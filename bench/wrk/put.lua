-- PUT /api/items/<id> with If-Match: every request carries the item's current
-- version, so every write succeeds (a 412 would be counted as a status error).
-- Each wrk thread owns the ids congruent to its number, walks them in order
-- (so no two in-flight requests touch one row) and learns the new version
-- from each response's body and ETag. run.sh resets versions to 1 first.
dofile(os.getenv("WRK_LUA_DIR") .. "/report.lua")
local items = tonumber(os.getenv("BENCH_ITEMS") or "10000")
-- wrk starts each thread right after its setup(), so the thread count comes
-- from run.sh rather than from counting setup() calls.
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local versions = {}
local next_id = nil
local body = '{"name":"bench item","description":"replaced by wrk"}'

function request()
  if next_id == nil or next_id > items then
    next_id = tid + 1
  end
  local id = next_id
  next_id = next_id + nthreads
  local headers = {
    ["Content-Type"] = "application/json",
    ["If-Match"] = '"' .. (versions[id] or 1) .. '"',
  }
  return wrk.format("PUT", "/api/items/" .. id, headers, body)
end

function response(status, headers, body)
  local id = body:match('"id":(%d+)')
  local etag = headers["etag"] or headers["ETag"]
  if id and etag then
    versions[tonumber(id)] = tonumber(etag:match('"(%d+)"'))
  end
end
