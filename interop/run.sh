#!/usr/bin/env bash
# Run the Warren interop suite (pika + pytest) against the broker at $AMQP_URL.
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ interop/run.sh [pytest args...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
# Run the whole suite unless a test path (file, dir or node id) was given.
has_path=0
for a in "$@"; do
    if [[ "$a" != -* && -e "${a%%::*}" ]]; then has_path=1; fi
done
if [ "$has_path" = 0 ]; then set -- "$HERE" "$@"; fi
exec "$VENV/bin/python" -m pytest -q --rootdir "$HERE" "$@"
