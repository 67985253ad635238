-- GET /api/v1/health/live: no database, the HTTP floor of the service.
dofile(os.getenv("WRK_LUA_DIR") .. "/report.lua")
wrk.path = "/api/v1/health/live"
