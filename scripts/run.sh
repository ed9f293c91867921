#!/usr/bin/env bash
# Start the API and WORKERS workers in the foreground; Ctrl-C or SIGTERM stops them all cleanly.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-1}
case "$WORKERS" in ''|*[!0-9]*) echo "WORKERS must be a positive integer, got '$WORKERS'" >&2; exit 2;; esac

pids=()
stop() {
    trap '' INT TERM
    echo "stopping ${#pids[@]} processes..." >&2
    kill -TERM "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    exit 0
}
trap stop INT TERM

"$PY" -m api_server.main & pids+=($!)
for _ in $(seq 1 "$WORKERS"); do
    "$PY" -m worker.main & pids+=($!)
done
# Stop everything if any one process exits on its own (a bad setting, a crash). Ctrl-C reaches
# every process of the group; each catches it and exits 0, and bash then runs no INT trap (it
# only acts on a SIGINT its child died of), so a clean exit here is a stop, not a failure.
wait -n
status=$?
if [ "$status" -eq 0 ]; then
    echo "stopping ${#pids[@]} processes..." >&2
else
    echo "a process exited with status $status; stopping the rest" >&2
fi
kill -TERM "${pids[@]}" 2>/dev/null
wait "${pids[@]}" 2>/dev/null
exit "$status"
