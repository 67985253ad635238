-- GET /api/items: the first page (default limit, 50 items).
dofile(os.getenv("WRK_LUA_DIR") .. "/report.lua")
wrk.path = "/api/items"
