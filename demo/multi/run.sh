#!/usr/bin/env bash
# Two demo processes on ports 5001 and 5002 sharing one store and one Redis (see README.rst).
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."

export FLASK_FEATHERS_MESSAGE_QUEUE="${FLASK_FEATHERS_MESSAGE_QUEUE:-redis://127.0.0.1:6379/0}"
export FLASK_DEMO_DATABASE_URL="${FLASK_DEMO_DATABASE_URL:-sqlite:////tmp/flask-feathers-demo.db}"
PYTHON="${PYTHON:-.venv/bin/python}"
PORTS="${PORTS:-5001 5002}"

if ! redis-cli -u "$FLASK_FEATHERS_MESSAGE_QUEUE" ping >/dev/null 2>&1; then
    echo "run.sh: no Redis answers at $FLASK_FEATHERS_MESSAGE_QUEUE; start one with" >&2
    echo "        redis-server --port 6379 --save '' --appendonly no" >&2
    exit 1
fi

pids=()
stop() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; wait; }
trap stop EXIT
trap 'exit 130' INT TERM
for port in $PORTS; do
    "$PYTHON" -m flask --app demo run --host 127.0.0.1 --port "$port" &
    pids+=($!)
done
echo "run.sh: demo on $(for p in $PORTS; do printf 'http://127.0.0.1:%s/ ' "$p"; done)" >&2
echo "run.sh: events shared over $FLASK_FEATHERS_MESSAGE_QUEUE, store $FLASK_DEMO_DATABASE_URL" >&2
wait -n
