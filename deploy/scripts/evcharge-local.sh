#!/usr/bin/env bash
# Runs evcharge processes on this machine in the background — any number of CPs and drivers,
# and if wanted the central and an embedded broker — each with its own data directory, log
# file and pid file under one run directory. Lists them, stops one, crashes a random one.
# Registers every CP and driver it starts (evcharge cp-register, driver-register) and hands
# each its secret in a file.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: evcharge-local.sh [--run-dir DIR] COMMAND [ARGS]

Runs evcharge processes on this machine in the background, each with its own data
directory, log file (ID.log) and pid file (ID.pid) under the run directory.

Commands:
  start-cps N [--first K] [--pages PORT] [--location TEXT] [--price EUR] [--api URL]
                      register and start CPs CP00K … (K+N-1), default K=1; the monitor
                      page of the first on 127.0.0.1:PORT, the next ones 10 apart (default:
                      no pages). Each CP is registered at --location (default "ID on HOST")
                      and --price (default 0.35 EUR/kWh) unless RUN_DIR/ID.secret holds its
                      secret already, and started with that file (see Registration below)
  start-drivers N [--first K] [--requests M] [--file PATH] [--pages PORT] [--api URL]
                      register and start drivers D00K …, each serving M requests at any
                      available CP (default 10) or the requests of PATH, then leaving; with
                      --pages, dashboards on 127.0.0.1:PORT, +10, … (and the driver stays).
                      Each driver is registered unless RUN_DIR/ID.secret holds its secret
                      already, and started with that file (see Registration below)
  start-central       the central, its database in RUN_DIR/central; before its first start
                      an API token for this script in RUN_DIR/api-token (and, on a new
                      database, the operator admin, its one-time password in first-admin-password)
  start-broker        an embedded Kafka-protocol broker (in memory, loopback only); later
                      starts use it when EVCHARGE_KAFKA__BOOTSTRAP is not set
  start ID…           start again what was started before under these ids, the same way
  list                every id with its pid, state (running, stopped, down) and log
  stop ID…            stop these (SIGTERM, then SIGKILL after 10 s)
  stop-all            stop everything of the run directory (the broker last)
  crash-random [KIND…]  SIGKILL one running process chosen at random among the kinds
                      cp, driver, central (default: cp driver) and say which
  -h, --help          this text

Addresses come from the environment, as for evcharge itself:
  EVCHARGE_KAFKA__BOOTSTRAP  Kafka bootstrap servers (default: the broker started here, or
                             127.0.0.1:9092)
  EVCHARGE_MONITOR__CENTRAL  the central's TCP address for monitors (default 127.0.0.1:5000)
  EVCHARGE_CENTRAL__LISTEN, EVCHARGE_CENTRAL__HTTP  the central's own addresses
Any other EVCHARGE_SECTION__KEY variable is passed on to every process.

Registration: a CP or a driver joins only once registered, with the secret issued then
(written to RUN_DIR/ID.secret, readable by its owner only). start-cps registers each CP
with evcharge cp-register, start-drivers each driver with evcharge driver-register:
  - through the central's API, when the central runs: the central of this run directory
    (start-central; its address from EVCHARGE_CENTRAL__HTTP when it was started) with the
    token in RUN_DIR/api-token, or any other central at --api URL (default: EVCHARGE_CENTRAL__HTTP,
    else port 8002 of the host of EVCHARGE_MONITOR__CENTRAL) with an operator's API token
    in EVCHARGE_API_TOKEN (evcharge operator token NAME, or the console);
  - on the database RUN_DIR/central, when the central of this run directory is stopped.
  EVCHARGE_API_TOKEN wins over RUN_DIR/api-token and is never passed on to the processes,
  nor are EVCHARGE_CP__SECRET and EVCHARGE_DRIVER__SECRET (each has its own secret file).

  EVCHARGE_BIN      the evcharge binary (default: evcharge on PATH, else target/release/evcharge)
  EVCHARGE_RUN_DIR  the run directory (default: ./evcharge-run); --run-dir wins
EOF
}

die() {
  echo "evcharge-local: $*" >&2
  exit 1
}

RUN_DIR=${EVCHARGE_RUN_DIR:-$PWD/evcharge-run}
if [[ ${1:-} == --run-dir ]]; then
  [[ $# -ge 2 ]] || die "--run-dir needs a directory"
  RUN_DIR=$2
  shift 2
fi

find_binary() {
  if [[ -n ${EVCHARGE_BIN:-} ]]; then
    [[ -x $EVCHARGE_BIN ]] || die "EVCHARGE_BIN=$EVCHARGE_BIN is not an executable file"
    echo "$EVCHARGE_BIN"
  elif command -v evcharge >/dev/null 2>&1; then
    command -v evcharge
  else
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    [[ -x $here/target/release/evcharge ]] ||
      die "no evcharge binary: set EVCHARGE_BIN, put evcharge on PATH, or run cargo build --release"
    echo "$here/target/release/evcharge"
  fi
}

# The start time of a live process in clock ticks since boot: with the pid, it names one
# process for good (a pid alone may be reused once the process is gone). Fails for a process
# that is gone or dead but not yet reaped (a zombie).
start_time() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  local -a fields
  read -r -a fields <<<"$rest"
  [[ ${fields[0]} != Z && ${fields[0]} != X ]] || return 1
  echo "${fields[19]}"
}

# The pid of ID if it runs; fails otherwise.
running_pid() {
  local file=$RUN_DIR/$1.pid pid started now
  [[ -f $file ]] || return 1
  read -r pid started <"$file" || return 1
  now=$(start_time "$pid") || return 1
  [[ $now == "$started" ]] || return 1
  echo "$pid"
}

state_of() {
  if running_pid "$1" >/dev/null; then
    echo running
  elif [[ -f $RUN_DIR/$1.pid ]]; then
    echo down
  else
    echo stopped
  fi
}

kind_of() {
  case $1 in
    broker) echo broker ;;
    central) echo central ;;
    CP*) echo cp ;;
    D*) echo driver ;;
    *) echo other ;;
  esac
}

# Every id started in the run directory.
all_ids() {
  local f
  shopt -s nullglob
  for f in "$RUN_DIR"/*.cmd; do
    f=${f##*/}
    echo "${f%.cmd}"
  done
  shopt -u nullglob
}

# Kafka comes from the environment, or from the broker started here.
kafka_env() {
  if [[ -z ${EVCHARGE_KAFKA__BOOTSTRAP:-} && -s $RUN_DIR/bootstrap ]]; then
    EVCHARGE_KAFKA__BOOTSTRAP=$(cat "$RUN_DIR/bootstrap")
    export EVCHARGE_KAFKA__BOOTSTRAP
  fi
}

# Starts ID in the background with the arguments recorded in ID.cmd and the EVCHARGE_
# variables recorded in ID.env.
launch() {
  local id=$1 pid bin
  if pid=$(running_pid "$id"); then
    echo "$id already runs (pid $pid)"
    return 0
  fi
  [[ -f $RUN_DIR/$id.cmd ]] || die "$id was never started in $RUN_DIR (see list)"
  bin=$(find_binary)
  local -a argv
  mapfile -d '' argv <"$RUN_DIR/$id.cmd"
  (
    # shellcheck disable=SC1090
    source "$RUN_DIR/$id.env"
    cd "$RUN_DIR"
    # The operator's token is the registrations', and each CP and driver has its own secret
    # file (a secret given itself would win over it).
    unset EVCHARGE_API_TOKEN EVCHARGE_CP__SECRET EVCHARGE_DRIVER__SECRET
    exec "$bin" "${argv[@]}" </dev/null >>"$RUN_DIR/$id.log" 2>&1
  ) &
  pid=$!
  echo "$pid $(start_time "$pid")" >"$RUN_DIR/$id.pid"
  echo "started $id (pid $pid, log $RUN_DIR/$id.log)"
}

# Records how ID is started, then starts it.
record_and_launch() {
  local id=$1
  shift
  printf '%s\0' "$@" >"$RUN_DIR/$id.cmd"
  # Only exported EVCHARGE_ variables, written so that sourcing gives them back exactly;
  # not the script's own, nor the operator's token or a secret.
  export -p | grep -E '^declare -x EVCHARGE_[A-Z0-9_]+=' \
    | grep -Ev '^declare -x EVCHARGE_(BIN|RUN_DIR|API_TOKEN|CP__SECRET|DRIVER__SECRET)=' \
      >"$RUN_DIR/$id.env" || true
  launch "$id"
}

number() {
  [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a number, not '$2'"
  echo "$2"
}

# An address `host:port` the central binds, as a URL of this machine's: the wildcard
# becomes loopback.
local_url() {
  local host=${1%:*} port=${1##*:}
  case $host in
    0.0.0.0 | "") host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
  esac
  echo "http://$host:$port"
}

# Where the central's API is (without --api): the central of this run directory at the
# address it was started with; else EVCHARGE_CENTRAL__HTTP; else port 8002 of the host the
# monitors reach the central at.
api_url() {
  local address
  if [[ -f $RUN_DIR/central.cmd ]]; then
    # shellcheck disable=SC1090,SC1091
    address=$(source "$RUN_DIR/central.env" && echo "${EVCHARGE_CENTRAL__HTTP:-0.0.0.0:8002}")
    local_url "$address"
  elif [[ -n ${EVCHARGE_CENTRAL__HTTP:-} ]]; then
    local_url "$EVCHARGE_CENTRAL__HTTP"
  else
    address=${EVCHARGE_MONITOR__CENTRAL:-127.0.0.1:5000}
    local_url "${address%:*}:8002"
  fi
}

# Waits until the API at URL takes connections (a central started just now opens it within
# a second or two).
wait_api() {
  local rest=${1#*://} host port tries=0
  rest=${rest%%/*}
  host=${rest%:*} port=${rest##*:}
  host=${host#[}
  host=${host%]}
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    ((tries++ < 300)) || die "the central's API at $1 does not answer (see --help, Registration)"
    sleep 0.1
  done
}

# Registers ID, a CP or a driver, with the registration command and its arguments that follow
# (cp-register …, driver-register …), its secret in RUN_DIR/ID.secret, unless that file holds
# a secret already (it was registered before). TERMS, if any, is what the message shows of
# the registration.
register() {
  local id=$1 api=$2 terms=$3 secret=$RUN_DIR/$1.secret bin out token
  shift 3
  [[ ! -s $secret ]] || return 0
  bin=$(find_binary)
  local -a argv=("$@" --secret-file "$secret")
  if [[ -z $api && -f $RUN_DIR/central.cmd ]] && ! running_pid central >/dev/null; then
    # This run directory's central is stopped: its database is free.
    out=$("$bin" "${argv[@]}" --data "$RUN_DIR/central" 2>&1) ||
      die "cannot register $id on $RUN_DIR/central: $out"
    echo "registered $id on $RUN_DIR/central${terms:+ ($terms)}"
    return 0
  fi
  api=${api:-$(api_url)}
  token=${EVCHARGE_API_TOKEN:-}
  if [[ -z $token && -s $RUN_DIR/api-token ]]; then token=$(<"$RUN_DIR/api-token"); fi
  [[ -n $token ]] ||
    die "registering $id through the central's API ($api) needs an operator's API token in EVCHARGE_API_TOKEN (evcharge operator token NAME, or the console), or a central started here with start-central"
  wait_api "$api"
  out=$(EVCHARGE_API_TOKEN=$token "$bin" "${argv[@]}" --api "$api" 2>&1) ||
    die "cannot register $id through $api: $out (registered before, $id needs its secret in $secret)"
  echo "registered $id through $api${terms:+ ($terms)}"
}

start_cps() {
  [[ $# -ge 1 ]] || die "start-cps needs a number of CPs (see --help)"
  local n first=1 pages="" location="" price=0.35 api=""
  n=$(number "the number of CPs" "$1")
  shift
  while [[ $# -gt 0 ]]; do
    case $1 in
      --first) first=$(number --first "${2:-}"); shift 2 ;;
      --pages) pages=$(number --pages "${2:-}"); shift 2 ;;
      --location) location=${2:?--location needs a text}; shift 2 ;;
      --price) price=${2:?--price needs a price}; shift 2 ;;
      --api) api=${2:?--api needs a URL}; shift 2 ;;
      *) die "start-cps: unknown option $1" ;;
    esac
  done
  find_binary >/dev/null
  kafka_env
  local i id
  for ((i = first; i < first + n; i++)); do
    id=$(printf 'CP%03d' "$i")
    if running_pid "$id" >/dev/null; then
      launch "$id"
      continue
    fi
    local where=${location:-$id on $(hostname)}
    register "$id" "$api" "$where, $price EUR/kWh" \
      cp-register --id "$id" --location "$where" --price "$price"
    local -a argv=(cp --id "$id" --data "$RUN_DIR/$id" --secret-file "$RUN_DIR/$id.secret")
    if [[ -n $pages ]]; then argv+=(--http "127.0.0.1:$((pages + 10 * (i - first)))"); fi
    record_and_launch "$id" "${argv[@]}"
  done
}

start_drivers() {
  [[ $# -ge 1 ]] || die "start-drivers needs a number of drivers (see --help)"
  local n first=1 requests=10 file="" pages="" api=""
  n=$(number "the number of drivers" "$1")
  shift
  while [[ $# -gt 0 ]]; do
    case $1 in
      --first) first=$(number --first "${2:-}"); shift 2 ;;
      --requests) requests=$(number --requests "${2:-}"); shift 2 ;;
      --file) file=${2:?--file needs a path}; shift 2 ;;
      --pages) pages=$(number --pages "${2:-}"); shift 2 ;;
      --api) api=${2:?--api needs a URL}; shift 2 ;;
      *) die "start-drivers: unknown option $1" ;;
    esac
  done
  [[ -z $file || -r $file ]] || die "cannot read the requests file $file"
  find_binary >/dev/null
  kafka_env
  local i id plan
  for ((i = first; i < first + n; i++)); do
    id=$(printf 'D%03d' "$i")
    if running_pid "$id" >/dev/null; then
      launch "$id"
      continue
    fi
    register "$id" "$api" "" driver-register --id "$id"
    plan=$file
    if [[ -z $plan ]]; then
      plan=$RUN_DIR/$id.requests
      {
        echo "# $requests supplies at any available CP"
        for ((r = 0; r < requests; r++)); do echo '*'; done
      } >"$plan"
    fi
    local -a argv=(driver --id "$id" --file "$plan" --secret-file "$RUN_DIR/$id.secret")
    if [[ -n $pages ]]; then argv+=(--http "127.0.0.1:$((pages + 10 * (i - first)))"); fi
    record_and_launch "$id" "${argv[@]}"
  done
}

# An API token for start-cps, made while the central's database is free, for an operator
# of the script's own (a token of an operator whose one-time password is unchanged would be
# refused). On a new database the first operator is made here too: admin, with a one-time
# password in a file only this user can read, RUN_DIR/first-admin-password.
prepare_token() {
  local bin data=$RUN_DIR/central operators
  bin=$(find_binary)
  operators=$("$bin" operator list --data "$data" 2>>"$RUN_DIR/central.log") ||
    die "cannot read the operators of $data; see $RUN_DIR/central.log"
  if [[ -z $operators ]]; then
    (umask 077 && "$bin" operator add admin --data "$data" >"$RUN_DIR/first-admin-password" \
      2>>"$RUN_DIR/central.log") ||
      die "cannot add the operator admin to $data; see $RUN_DIR/central.log"
  fi
  if ! grep -qx 'evcharge-local' <<<"$operators"; then
    # Nobody logs in as it: a long random password, never shown.
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' |
      "$bin" operator add evcharge-local --password-stdin --data "$data" >/dev/null \
        2>>"$RUN_DIR/central.log" ||
      die "cannot add the operator evcharge-local to $data; see $RUN_DIR/central.log"
  fi
  (umask 077 && "$bin" operator token evcharge-local --label evcharge-local.sh --data "$data" \
    >"$RUN_DIR/api-token" 2>>"$RUN_DIR/central.log") ||
    die "cannot issue an API token in $data"
}

start_central() {
  local -a argv=(central --data "$RUN_DIR/central")
  [[ $# -eq 0 ]] || die "start-central takes no arguments (its addresses come from EVCHARGE_CENTRAL__LISTEN and EVCHARGE_CENTRAL__HTTP)"
  kafka_env
  if [[ ! -s $RUN_DIR/api-token ]] && ! running_pid central >/dev/null; then prepare_token; fi
  record_and_launch central "${argv[@]}"
}

start_broker() {
  [[ $# -eq 0 ]] || die "start-broker takes no arguments"
  rm -f "$RUN_DIR/bootstrap"
  record_and_launch broker broker --bootstrap-file "$RUN_DIR/bootstrap"
  local waited=0
  until [[ -s $RUN_DIR/bootstrap ]]; do
    running_pid broker >/dev/null || die "the broker did not start; see $RUN_DIR/broker.log"
    ((waited++ < 300)) || die "the broker gave no address within 30 s; see $RUN_DIR/broker.log"
    sleep 0.1
  done
  echo "broker on $(cat "$RUN_DIR/bootstrap")"
}

stop_one() {
  local id=$1 pid
  [[ -f $RUN_DIR/$id.cmd ]] || die "no $id in $RUN_DIR (see list)"
  if ! pid=$(running_pid "$id"); then
    rm -f "$RUN_DIR/$id.pid"
    echo "$id was not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while running_pid "$id" >/dev/null; do
    if ((waited++ >= 100)); then
      echo "$id did not stop within 10 s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.1
  done
  rm -f "$RUN_DIR/$id.pid"
  echo "stopped $id (pid $pid)"
}

list() {
  local id pid
  printf '%-8s %-7s %-8s %-8s %s\n' ID KIND PID STATE LOG
  while read -r id; do
    [[ -n $id ]] || continue
    pid=$(running_pid "$id" || echo -)
    printf '%-8s %-7s %-8s %-8s %s\n' "$id" "$(kind_of "$id")" "$pid" "$(state_of "$id")" "$RUN_DIR/$id.log"
  done < <(all_ids)
}

crash_random() {
  local -a kinds=("$@")
  [[ ${#kinds[@]} -gt 0 ]] || kinds=(cp driver)
  local k
  for k in "${kinds[@]}"; do
    case $k in cp | driver | central) ;; *) die "crash-random: unknown kind $k (cp, driver, central)" ;; esac
  done
  local -a candidates=()
  local id
  while read -r id; do
    [[ -n $id ]] || continue
    for k in "${kinds[@]}"; do
      if [[ $(kind_of "$id") == "$k" ]] && running_pid "$id" >/dev/null; then
        candidates+=("$id")
      fi
    done
  done < <(all_ids)
  [[ ${#candidates[@]} -gt 0 ]] || die "nothing of kind ${kinds[*]} is running"
  id=${candidates[RANDOM % ${#candidates[@]}]}
  local pid
  pid=$(running_pid "$id")
  kill -KILL "$pid"
  while running_pid "$id" >/dev/null; do sleep 0.1; done
  echo "crashed $id (pid $pid, SIGKILL); bring it back with: $0 --run-dir $RUN_DIR start $id"
}

main() {
  [[ $# -ge 1 ]] || { usage >&2; exit 2; }
  local command=$1
  shift
  case $command in
    -h | --help | help) usage; return 0 ;;
  esac
  mkdir -p "$RUN_DIR"
  RUN_DIR=$(cd "$RUN_DIR" && pwd)
  case $command in
    start-cps) start_cps "$@" ;;
    start-drivers) start_drivers "$@" ;;
    start-central) start_central "$@" ;;
    start-broker) start_broker "$@" ;;
    start)
      [[ $# -ge 1 ]] || die "start needs at least one id (see list)"
      kafka_env
      for id in "$@"; do launch "$id"; done
      ;;
    list) list ;;
    stop)
      [[ $# -ge 1 ]] || die "stop needs at least one id (see list)"
      for id in "$@"; do stop_one "$id"; done
      ;;
    stop-all)
      local id
      while read -r id; do
        if [[ -n $id && $id != broker ]]; then stop_one "$id"; fi
      done < <(all_ids)
      if [[ -f $RUN_DIR/broker.cmd ]]; then stop_one broker; fi
      ;;
    crash-random) crash_random "$@" ;;
    *) die "unknown command '$command' (see --help)" ;;
  esac
}

main "$@"
