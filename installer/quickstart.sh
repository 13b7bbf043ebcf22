#!/usr/bin/env bash
# Parc's main job on one machine, from nothing: installs the packages, builds,
# starts parc-server on its embedded SQLite database, enrolls a parc-agent for
# this machine, waits for its inventory and shows it with parcctl.
#
#   installer/quickstart.sh          start (or reuse) server + agent and show the parc
#   installer/quickstart.sh stop     stop both
#
# Environment: PARC_HOME (state, default /var/lib/parc-quickstart), PARC_PORT (default 7443).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
PARC_HOME=${PARC_HOME:-/var/lib/parc-quickstart}
PORT=${PARC_PORT:-7443}
BUILD_DIR=${BUILD_DIR:-$SRC/build-release}
SERVER_DIR=$PARC_HOME/server
AGENT_DIR=$PARC_HOME/agent

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_all() {
  for p in agent server; do
    if alive "$PARC_HOME/$p.pid"; then
      kill "$(cat "$PARC_HOME/$p.pid")" && say "stopped parc-$p"
    fi
    rm -f "$PARC_HOME/$p.pid"
  done
}

if [[ "${1:-}" == "stop" ]]; then stop_all; exit 0; fi

say "Installing build and runtime packages (Debian 12)"
./installer/install-deps.sh

say "Building Parc in $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DPARC_BUILD_TESTS=OFF -DPARC_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target parc-server parc-agent parcctl 2>&1 | grep -E 'error|warning|Linking' || true
SERVER=$BUILD_DIR/server/parc-server
AGENT=$BUILD_DIR/agent/parc-agent
CTL=$BUILD_DIR/ctl/parcctl
for b in "$SERVER" "$AGENT" "$CTL"; do [[ -x "$b" ]] || { echo "build failed: $b missing" >&2; exit 1; }; done
CTL_ARGS=(--credentials "$SERVER_DIR/admin.pem" --server "127.0.0.1:$PORT")

mkdir -p "$PARC_HOME"
chmod 700 "$PARC_HOME"
if alive "$PARC_HOME/server.pid"; then
  say "parc-server already running (pid $(cat "$PARC_HOME/server.pid"))"
else
  say "Starting parc-server on port $PORT (state: $SERVER_DIR, database: $SERVER_DIR/parc.db)"
  rm -f "$SERVER_DIR/server.addr"
  nohup "$SERVER" --state-dir "$SERVER_DIR" --listen "0.0.0.0:$PORT" >>"$PARC_HOME/server.log" 2>&1 &
  echo $! >"$PARC_HOME/server.pid"
  for _ in $(seq 1 100); do
    [[ -f "$SERVER_DIR/server.addr" ]] && break
    alive "$PARC_HOME/server.pid" || { echo "parc-server failed to start; see $PARC_HOME/server.log:" >&2; tail -5 "$PARC_HOME/server.log" >&2; exit 1; }
    sleep 0.1
  done
fi

if [[ -f "$AGENT_DIR/enrollment.toml" ]]; then
  say "This machine is already enrolled ($(grep host_id "$AGENT_DIR/enrollment.toml"))"
else
  say "Creating an enrollment token (valid 1 hour)"
  TOKEN_JSON=$("$CTL" "${CTL_ARGS[@]}" token create --ttl 1h --comment quickstart --json)
  TOKEN=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' <<<"$TOKEN_JSON")
  FP=$(sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p' <<<"$TOKEN_JSON")
  say "Enrolling this machine (CA pinned: $FP)"
  "$AGENT" --state-dir "$AGENT_DIR" enroll --server "127.0.0.1:$PORT" --token "$TOKEN" --ca-fingerprint "$FP"
fi
HOST_ID=$(sed -n "s/^host_id *= *[\"']\(.*\)[\"']\$/\1/p" "$AGENT_DIR/enrollment.toml")

if alive "$PARC_HOME/agent.pid"; then
  say "parc-agent already running (pid $(cat "$PARC_HOME/agent.pid"))"
else
  say "Starting parc-agent for this machine"
  nohup "$AGENT" --state-dir "$AGENT_DIR" run >>"$PARC_HOME/agent.log" 2>&1 &
  echo $! >"$PARC_HOME/agent.pid"
fi

say "Waiting for the inventory to arrive"
for _ in $(seq 1 150); do
  if "$CTL" "${CTL_ARGS[@]}" host show "$HOST_ID" --json 2>/dev/null | grep -q '"inventory_digest": *"[0-9a-f]'; then break; fi
  sleep 0.2
done

say "The parc"
"$CTL" "${CTL_ARGS[@]}" hosts
echo
say "This host"
"$CTL" "${CTL_ARGS[@]}" host show "$HOST_ID"
echo
say "Inventory summary (hardware)"
"$CTL" "${CTL_ARGS[@]}" inventory "$HOST_ID" --section os
"$CTL" "${CTL_ARGS[@]}" inventory "$HOST_ID" --section hardware | head -40

cat <<EOT

Parc is running and LEFT RUNNING in the background:
  parc-server  pid $(cat "$PARC_HOME/server.pid")  log $PARC_HOME/server.log   state $SERVER_DIR
  parc-agent   pid $(cat "$PARC_HOME/agent.pid")  log $PARC_HOME/agent.log    state $AGENT_DIR
Stop both with:   installer/quickstart.sh stop

Next steps (parcctl = $CTL):
  alias parcctl='$CTL --credentials $SERVER_DIR/admin.pem'
  parcctl inventory $HOST_ID --section software      # installed packages
  parcctl collect $HOST_ID                           # push "collect inventory now"
  parcctl history $HOST_ID                           # what changed, and when
  parcctl token create --group lab --ttl 2h          # enroll another machine (prints the command to run there)
  parcctl inventory export --format csv --section software > software.csv
EOT
