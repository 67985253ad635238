#!/bin/sh
# Entrypoint of the dev image (Dockerfile.dev), installed as /usr/local/bin/kindling-dev.
#
#   kindling-dev [serve|migrate|...]   run kindling with these arguments; restart it
#                                      in place when asked, otherwise exit with its status
#   kindling-dev --restart             what Tilt's live_update run step calls after
#                                      syncing a new binary: stop the running kindling
#                                      so the loop below starts the new one
#   kindling-dev --pid                 the running kindling's process id (what a
#                                      debugger attaches to)
#
# With KINDLING_DEV_GDBSERVER=ADDRESS:PORT (`tilt up -- --debug`; the image then
# has gdbserver) a gdbserver in --multi mode listens there beside kindling,
# which runs as usual until a debugger attaches to it by pid. It outlives every
# restart, so after a live update the debugger attaches to the new process.
#
# Tilt's live_update copies a freshly compiled binary to $LIVE_BIN (a writable
# emptyDir in the dev overlay; the root filesystem stays read-only). The baked
# $IMAGE_BIN is used until the first sync. Restarting the process instead of the
# container keeps the pod, its IP and the synced binary; a crash still exits the
# container so Kubernetes restarts it as usual.
set -u

IMAGE_BIN=/app/kindling
LIVE_BIN=/app/live/kindling
STATE=${KINDLING_DEV_STATE:-/tmp}
PIDFILE="$STATE/kindling-dev.pid"
RESTART_FLAG="$STATE/kindling-dev.restart"
# The synced build's timings (tilt/stage-binary.sh), which the restarted
# kindling logs as its `dev reload` line (core/src/dev_reload.rs).
LIVE_FIGURES=/app/live/dev-reload.env

if [ "${1:-}" = "--restart" ]; then
  pid=$(cat "$PIDFILE" 2>/dev/null) || { echo "kindling-dev: kindling is not running" >&2; exit 1; }
  : >"$RESTART_FLAG"
  kill -TERM "$pid" 2>/dev/null || exit 0
  # A graceful stop takes milliseconds when idle; an open keep-alive connection
  # could hold it for SHUTDOWN_GRACE_SECS, which a dev restart need not honour:
  # after 2 s it is killed. Checked every 20 ms, so that Tilt's run step ends
  # as soon as the old process has gone.
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
  kill -KILL "$pid" 2>/dev/null
  exit 0
fi

if [ "${1:-}" = "--pid" ]; then
  cat "$PIDFILE" 2>/dev/null || { echo "kindling-dev: kindling is not running" >&2; exit 1; }
  exit 0
fi

if [ -n "${KINDLING_DEV_GDBSERVER:-}" ]; then
  command -v gdbserver >/dev/null || {
    echo "kindling-dev: KINDLING_DEV_GDBSERVER is set but this image has no gdbserver (built without --debug?)" >&2
    exit 1
  }
  gdbserver --multi "$KINDLING_DEV_GDBSERVER" &
  echo "kindling-dev: gdbserver --multi on $KINDLING_DEV_GDBSERVER (attach to the pid of: kindling-dev --pid)" >&2
fi

child=""
stopping=false
# Pod termination: pass SIGTERM on and exit with kindling's status.
trap 'stopping=true; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT

while :; do
  bin=$IMAGE_BIN
  [ -x "$LIVE_BIN" ] && bin=$LIVE_BIN
  "$bin" "$@" &
  child=$!
  echo "$child" >"$PIDFILE"
  status=0
  wait "$child" || status=$?
  # wait returns early when a trapped signal arrives; wait for the real exit.
  while kill -0 "$child" 2>/dev/null; do status=0; wait "$child" || status=$?; done
  if ! $stopping && [ -f "$RESTART_FLAG" ]; then
    rm -f "$RESTART_FLAG"
    # Moved away, so they go with this start only: a restart without a new
    # sync reports nothing.
    if mv -f "$LIVE_FIGURES" "$STATE/dev-reload.env" 2>/dev/null; then
      export KINDLING_DEV_RELOAD_FILE="$STATE/dev-reload.env"
    else
      unset KINDLING_DEV_RELOAD_FILE
    fi
    echo "kindling-dev: restarting with $bin" >&2
    continue
  fi
  rm -f "$PIDFILE"
  exit "$status"
done
