# gdb, after `target extended-remote 127.0.0.1:2345` (gdbserver --multi beside the
# API; tilt/dev-entrypoint.sh): attaches to the running kindling, found by its
# path in the process table gdbserver reports. Its pid changes with every live
# update's restart; this finds the current one. Used by .vscode/launch.json and
# the README's gdb command line.
import gdb

KINDLING = ("/app/kindling", "/app/live/kindling")


def kindling_pids() -> list[str]:
    rows = gdb.execute("info os processes", to_string=True).splitlines()[1:]
    # Columns pid, user (empty when gdbserver cannot name the uid), command, cores.
    return [row.split()[0] for row in rows if set(row.split()[1:3]) & set(KINDLING)]


pids = kindling_pids()
if len(pids) != 1:
    raise gdb.GdbError(f"want one kindling process behind gdbserver, found {pids or 'none'}")
gdb.execute(f"attach {pids[0]}")
