#!/usr/bin/env bash
# A whole network on this machine, started part by part with evcharge-local.sh: an embedded
# broker, the central, N CPs and N drivers (each registered, with its secret); after a while
# a random part (a CP, a driver or the central) is crashed with SIGKILL and brought back.
# Says each step. Ctrl-C stops everything.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: demo.sh [--cps N] [--drivers N] [--crash-after SECONDS] [--down SECONDS]
               [--rounds N] [--run-dir DIR] [--pages]

Starts an embedded broker, the central, N CPs and N drivers on this machine, each a
process of its own (see evcharge-local.sh list), each CP and driver registered at the
central and started with its secret (RUN_DIR/ID.secret). After --crash-after seconds
(default 20) a random part — a CP, a driver or the central — is killed with SIGKILL;
--down seconds later (default 5) it is started again. This repeats --rounds times
(default 0: until Ctrl-C). Ctrl-C (or SIGTERM) stops every process the demo started.

  --cps N         charging points CP001… (default 3)
  --drivers N     drivers D001…, each asking for 100 supplies at any CP (default 2)
  --pages         monitor pages on 127.0.0.1:8003, 8013…; driver dashboards on 8001, 8011…
  --run-dir DIR   where logs, pid files and data go (default: a fresh temporary directory)

The central listens on EVCHARGE_CENTRAL__LISTEN (default 127.0.0.1:5000) and serves the
console on EVCHARGE_CENTRAL__HTTP (default 127.0.0.1:8002). The binary comes from
EVCHARGE_BIN, else evcharge on PATH, else target/release/evcharge.
EOF
}

die() {
  echo "demo: $*" >&2
  exit 1
}

cps=3 drivers=2 crash_after=20 down=5 rounds=0 run_dir="" pages=""
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --cps) cps=${2:?--cps needs a number}; shift 2 ;;
    --drivers) drivers=${2:?--drivers needs a number}; shift 2 ;;
    --crash-after) crash_after=${2:?--crash-after needs seconds}; shift 2 ;;
    --down) down=${2:?--down needs seconds}; shift 2 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
    --run-dir) run_dir=${2:?--run-dir needs a directory}; shift 2 ;;
    --pages) pages=yes; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for value in "$cps" "$drivers" "$crash_after" "$down" "$rounds"; do
  [[ $value =~ ^[0-9]+$ ]] || die "'$value' is not a whole number"
done

local_sh=$(dirname "${BASH_SOURCE[0]}")/evcharge-local.sh
run_dir=${run_dir:-$(mktemp -d -t evcharge-demo.XXXXXX)}
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
parts() { "$local_sh" --run-dir "$run_dir" "$@"; }
# Sleeps in the background so that Ctrl-C and SIGTERM are handled at once.
pause_pid=""
pause() {
  sleep "$1" &
  pause_pid=$!
  wait "$pause_pid"
}
step() { echo "== $*"; }

export EVCHARGE_CENTRAL__LISTEN=${EVCHARGE_CENTRAL__LISTEN:-127.0.0.1:5000}
export EVCHARGE_CENTRAL__HTTP=${EVCHARGE_CENTRAL__HTTP:-127.0.0.1:8002}
export EVCHARGE_MONITOR__CENTRAL=${EVCHARGE_MONITOR__CENTRAL:-127.0.0.1:${EVCHARGE_CENTRAL__LISTEN##*:}}

stopping=""
stop_everything() {
  [[ -z $stopping ]] || return 0
  stopping=yes
  [[ -z $pause_pid ]] || kill "$pause_pid" 2>/dev/null || true
  step "stopping every part"
  parts stop-all || true
  step "logs and data stay in $run_dir"
}
trap stop_everything EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until a TCP port answers on this machine.
wait_port() {
  local what=$1 address=$2 host port tries=0
  host=${address%:*} port=${address##*:}
  [[ $host != 0.0.0.0 ]] || host=127.0.0.1
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    ((tries++ < 600)) || die "$what did not answer on $host:$port within 60 s; see $run_dir"
    pause 0.1
  done
}

step "run directory $run_dir (logs: ID.log; list: $local_sh --run-dir $run_dir list)"
step "embedded Kafka broker"
parts start-broker

# An operator for scripts, with its API token next to the logs: the database is free now.
# evcharge-local.sh registers the CPs and the drivers through the central's API with this
# token.
if [[ -n ${EVCHARGE_BIN:-} ]]; then
  bin=$EVCHARGE_BIN
elif command -v evcharge >/dev/null 2>&1; then
  bin=$(command -v evcharge)
else
  bin=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release/evcharge
fi
if [[ ! -s $run_dir/api-token ]]; then
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  echo "$password" | "$bin" operator add demo --password-stdin --data "$run_dir/central" >/dev/null
  "$bin" operator token demo --label demo.sh --data "$run_dir/central" >"$run_dir/api-token"
  echo "$password" >"$run_dir/demo-password"
fi

step "central (monitors on $EVCHARGE_CENTRAL__LISTEN, console on http://$EVCHARGE_CENTRAL__HTTP/)"
parts start-central
wait_port "the central" "$EVCHARGE_CENTRAL__HTTP"
step "console login: demo / $(cat "$run_dir/demo-password"); API token in $run_dir/api-token"

if ((cps > 0)); then
  step "$cps charging points"
  parts start-cps "$cps" ${pages:+--pages 8003}
fi
if ((drivers > 0)); then
  step "$drivers drivers, each asking for supplies at any available CP"
  parts start-drivers "$drivers" --requests 100 ${pages:+--pages 8001}
fi

round=0
while ((rounds == 0 || round < rounds)); do
  round=$((round + 1))
  step "round $round: a random part crashes in ${crash_after}s"
  pause "$crash_after"
  crashed=$(parts crash-random cp driver central)
  echo "$crashed"
  id=${crashed#crashed }
  id=${id%% *}
  step "$id is down; it comes back in ${down}s"
  pause "$down"
  parts start "$id"
  step "$id is back"
done
step "the network runs on; Ctrl-C stops it"
while true; do pause 3600; done
