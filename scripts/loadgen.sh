#!/usr/bin/env bash
# Small load generator that makes the Grafana dashboards move: creates, reads,
# lists and deletes items, with a few deliberate 404s and 422s so the error
# panels have something to show. Tilt offers it as the manual `loadgen` resource.
#
#   scripts/loadgen.sh [--url http://kindling.localhost] [--seconds 60] [--workers 4]
#
# Needs only bash and curl. Prints the count of each status code at the end.
set -euo pipefail

URL="http://kindling.localhost"
SECONDS_TOTAL=60
WORKERS=4
while (($#)); do
  case "$1" in
    --url) URL="$2"; shift 2 ;;
    --seconds) SECONDS_TOTAL="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    *) echo "usage: $0 [--url URL] [--seconds N] [--workers N]" >&2; exit 2 ;;
  esac
done

code() { curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "$@" || echo 000; }

worker() {
  local end=$((SECONDS + SECONDS_TOTAL)) i=0 id
  while ((SECONDS < end)); do
    i=$((i + 1))
    id="$(curl -s --max-time 5 -H 'Content-Type: application/json' \
      -d "{\"name\":\"loadgen $1-$i\",\"description\":\"made by scripts/loadgen.sh\"}" \
      "$URL/api/items" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')" || true
    if [[ -n "$id" ]]; then
      echo 201
      code "$URL/api/items/$id"
      code "$URL/api/items?limit=20"
      ((i % 3)) || code -X DELETE "$URL/api/items/$id"
    else
      echo 000
    fi
    ((i % 10)) || code "$URL/api/items/999999999"                      # 404
    ((i % 15)) || code -H 'Content-Type: application/json' -d '{"name":""}' "$URL/api/items"  # 422
  done
}

echo "loadgen: $WORKERS workers for ${SECONDS_TOTAL}s against $URL"
if ! curl -fsS --max-time 5 -o /dev/null "$URL/api/v1/health/live"; then
  echo "loadgen: $URL/api/v1/health/live does not answer; is the API up?" >&2
  exit 1
fi
for w in $(seq 1 "$WORKERS"); do worker "$w" & done | sort | uniq -c | awk '{printf "  HTTP %s: %d\n", $2, $1}'
