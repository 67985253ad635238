-- POST /api/items with a small valid body (a new row per request).
dofile(os.getenv("WRK_LUA_DIR") .. "/report.lua")
wrk.method = "POST"
wrk.path = "/api/items"
wrk.body = '{"name":"bench item","description":"written by wrk"}'
wrk.headers["Content-Type"] = "application/json"
