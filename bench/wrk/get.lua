-- GET /api/items/<id> for a random id among the 10,000 seeded items.
dofile(os.getenv("WRK_LUA_DIR") .. "/report.lua")
local items = tonumber(os.getenv("BENCH_ITEMS") or "10000")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
  return wrk.format("GET", "/api/items/" .. math.random(1, items))
end
