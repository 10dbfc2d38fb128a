#!/usr/bin/env bash
# modelwatch local stack: one entry point for the emulated AWS environment.
#
#   bash infra/local/stack.sh install       tools: venv (moto, SAM CLI, cfn-lint, cargo-lambda), prometheus
#   bash infra/local/stack.sh up            moto + Prometheus + resources from template.yaml + cargo lambda watch
#   bash infra/local/stack.sh up --localstack   ... plus LocalStack for SNS, SQS, CloudWatch (the LocalStack lane)
#   bash infra/local/stack.sh down          stop exactly what `up` started
#   bash infra/local/stack.sh status        what runs where
#   bash infra/local/stack.sh reset         wipe emulator state, re-create the resources (same names)
#   bash infra/local/stack.sh env           print the stack.env path (for `set -a; . "$(...)"`)
#   bash infra/local/stack.sh test          THE test command (fmt, clippy, e2e tests in both lanes, SAM checks)
#   bash infra/local/stack.sh demo [--keep] the main job: install, up, demo, down
#
# Every subcommand is idempotent. Configuration (environment):
#   MODELWATCH_VENV      venv directory                 (default infra/local/.venv)
#   MODELWATCH_RUN_DIR   pids, logs, data, stack.env    (default infra/local/.run)
#   MOTO_PORT            moto server                    (default 4566, LocalStack's port)
#   PROMETHEUS_PORT      Prometheus                     (default 9090)
#   LAMBDA_PORT          cargo lambda watch             (default 9000)
#   MODELWATCH_STACK     local stack / name prefix      (default modelwatch-local)
#   MODELWATCH_PARAMS    extra template parameters, "Key=Value Key=Value"
#                        (e.g. "TimestreamEnabled=false")
#   PYTHON               interpreter for the venv       (default python3)
#   MODELWATCH_LOCALSTACK 1: `up` runs the LocalStack lane (= up --localstack)
#   LOCALSTACK_PORT      LocalStack's gateway           (default 4567)
#   LOCALSTACK_PYTHON    a Python 3.13 for its venv     (default python3.13, else pyenv's 3.13)
#   LOCALSTACK_VENV      its venv                       (default infra/local/.venv-localstack)
#
# Lanes (stack.env's MODELWATCH_LANE): all-moto, the default, serves every AWS API
# from moto; localstack routes SNS, SQS and CloudWatch to LocalStack's runtime with
# the SDK's AWS_ENDPOINT_URL_<SERVICE> variables (DynamoDB, Timestream stay on moto).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL_DIR="$ROOT/infra/local"
VENV="${MODELWATCH_VENV:-$LOCAL_DIR/.venv}"
RUN_DIR="${MODELWATCH_RUN_DIR:-$LOCAL_DIR/.run}"
HOST=127.0.0.1
MOTO_PORT="${MOTO_PORT:-4566}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
LAMBDA_PORT="${LAMBDA_PORT:-9000}"
STACK_NAME="${MODELWATCH_STACK:-modelwatch-local}"
PYTHON="${PYTHON:-python3}"
REGION=us-east-1
REQUIREMENTS="$LOCAL_DIR/requirements.txt"
CONSTRAINTS="$LOCAL_DIR/constraints.txt"
STAMP="$VENV/.modelwatch-requirements.sha256"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4567}"
LOCALSTACK_VENV="${LOCALSTACK_VENV:-$LOCAL_DIR/.venv-localstack}"
LOCALSTACK_REQUIREMENTS="$LOCAL_DIR/requirements-localstack.txt"
LOCALSTACK_CONSTRAINTS="$LOCAL_DIR/constraints-localstack.txt"
LOCALSTACK_STAMP="$LOCALSTACK_VENV/.modelwatch-requirements.sha256"
# No release after this date is considered when resolving (uv's --exclude-newer).
LOCALSTACK_EXCLUDE_NEWER=2026-03-24

MOTO_URL="http://$HOST:$MOTO_PORT"
PROMETHEUS_URL="http://$HOST:$PROMETHEUS_PORT"
LAMBDA_URL="http://$HOST:$LAMBDA_PORT"
LOCALSTACK_URL="http://$HOST:$LOCALSTACK_PORT"
# Every component `up` may start, in start order (down stops them in reverse);
# COMPONENTS: those of the selected lane.
ALL_COMPONENTS=(moto localstack prometheus lambda)
set_lane() {
  LANE=$1
  if [[ $LANE == localstack ]]; then
    COMPONENTS=(moto localstack prometheus lambda)
  else
    COMPONENTS=(moto prometheus lambda)
  fi
}
if [[ ${MODELWATCH_LOCALSTACK:-0} == 1 ]]; then
  set_lane localstack
else
  set_lane all-moto
fi

export SAM_CLI_TELEMETRY=0

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ helpers

# Seconds since the epoch with sub-second precision isn't needed: whole seconds.
now() { date +%s; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# http_ok <url> [POST]: succeeds on a 2xx answer. The venv's Python instead of
# curl, so that nothing beyond Python is needed on the machine.
http_ok() {
  "$(venv_bin python)" - "$@" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], method=sys.argv[2] if len(sys.argv) > 2 else "GET")
with urllib.request.urlopen(req, timeout=5) as r:
    sys.exit(0 if 200 <= r.status < 300 else 1)
PY
}

# wait_for <what> <timeout-seconds> <command...>: polls until the command succeeds.
wait_for() {
  local what=$1 timeout=$2 start
  shift 2
  start=$(now)
  until "$@" >/dev/null 2>&1; do
    if (($(now) - start >= timeout)); then
      die "$what did not answer within ${timeout}s (logs in $RUN_DIR)"
    fi
    sleep 0.5
  done
}

pid_file() { echo "$RUN_DIR/$1.pid"; }

# The pid recorded for a component, if that process still runs.
running_pid() {
  local f pid
  f=$(pid_file "$1")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# start_bg <component> <log> <command...>: starts the command as the leader of
# a new session/process group (setsid), so `down` can stop it together with
# every child (cargo-lambda runs `cargo run` and the function binaries).
start_bg() {
  local name=$1 logfile=$2
  shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

# Descendant pids of $1, read from /proc (no procps needed). cargo-lambda
# starts each function instance in a session of its own, so killing its
# process group alone would not reach them.
descendants() {
  local -A children=()
  local stat line rest pid ppid
  for stat in /proc/[0-9]*/stat; do
    read -r line <"$stat" 2>/dev/null || continue
    pid=${line%% *}
    rest=${line##*) } # fields after "(comm)": state ppid pgrp ...
    read -r _ ppid _ <<<"$rest"
    children[$ppid]+=" $pid"
  done
  local -a queue=("$1")
  while ((${#queue[@]})); do
    pid=${queue[0]}
    queue=("${queue[@]:1}")
    for rest in ${children[$pid]:-}; do
      echo "$rest"
      queue+=("$rest")
    done
  done
}

stop_component() {
  local name=$1 pid i p
  local -a kids
  pid=$(running_pid "$name") || { rm -f "$(pid_file "$name")"; return 0; }
  mapfile -t kids < <(descendants "$pid")
  log "stopping $name (process group $pid${kids[*]:+, descendants ${kids[*]}})"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    # `kill -0 -PGID` succeeds while any process of the group is left.
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    log "$name did not stop on TERM within 10s; sending KILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  # Whatever the leader did not take down with it (function instances).
  for p in "${kids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      sleep 0.5
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  rm -f "$(pid_file "$name")"
}

venv_bin() { echo "$VENV/bin/$1"; }

requirements_hash() {
  { cat "$REQUIREMENTS" "$CONSTRAINTS"; "$PYTHON" --version 2>&1; } | sha256sum | cut -d' ' -f1
}

# ------------------------------------------------------------------ install

cmd_install() {
  install_python_tools
  install_prometheus
  install_rust_components
  if [[ $LANE == localstack ]]; then
    install_localstack
  fi
}

install_python_tools() {
  local want
  want=$(requirements_hash)
  if [[ -x $(venv_bin python) && -f $STAMP && $(<"$STAMP") == "$want" ]]; then
    log "venv up to date ($VENV)"
    return 0
  fi
  log "creating venv $VENV and installing $(grep -cvE '^\s*(#|-c|$)' "$REQUIREMENTS") pinned tools"
  [[ -x $(venv_bin python) ]] || "$PYTHON" -m venv "$VENV"
  rm -f "$STAMP"
  (cd "$LOCAL_DIR" && "$(venv_bin python)" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$REQUIREMENTS")
  echo "$want" >"$STAMP"
}

install_prometheus() {
  if command -v prometheus >/dev/null 2>&1; then
    return 0
  fi
  log "installing prometheus (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # `apt-get update` only when the package lists don't know the package yet.
  if ! apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y --no-install-recommends prometheus >/dev/null
  fi
  command -v prometheus >/dev/null 2>&1 || die "prometheus still not on PATH after apt-get install"
  # Without a policy-rc.d the package starts its own service on :9090; this
  # install started it, so stop it (ours runs under `up`, on its own data dir).
  if [[ -x /etc/init.d/prometheus ]] && /etc/init.d/prometheus status >/dev/null 2>&1; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

# A Python 3.13 for LocalStack's venv (its code needs >= 3.12; 3.13 is the one
# measured): LOCALSTACK_PYTHON, python3.13 on PATH, or pyenv's 3.13 (whose shim
# refuses to run while another version is selected).
localstack_python() {
  local candidate
  for candidate in "${LOCALSTACK_PYTHON:-}" python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    [[ -n $candidate ]] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

localstack_hash() {
  { cat "$LOCALSTACK_REQUIREMENTS" "$LOCALSTACK_CONSTRAINTS"; "$1" --version 2>&1; echo "$LOCALSTACK_EXCLUDE_NEWER"; } |
    sha256sum | cut -d' ' -f1
}

install_localstack() {
  local python want start
  [[ -x $(venv_bin uv) ]] || install_python_tools
  python=$(localstack_python) ||
    die "LocalStack's runtime needs Python 3.13 and none was found (tried \$LOCALSTACK_PYTHON, python3.13 on PATH, ${PYENV_ROOT:-$HOME/.pyenv}/versions/3.13*): install one (e.g. 'pyenv install 3.13') or set LOCALSTACK_PYTHON"
  want=$(localstack_hash "$python")
  if [[ -x $LOCALSTACK_VENV/bin/python && -f $LOCALSTACK_STAMP && $(<"$LOCALSTACK_STAMP") == "$want" ]]; then
    log "LocalStack venv up to date ($LOCALSTACK_VENV)"
    return 0
  fi
  log "installing LocalStack's runtime into $LOCALSTACK_VENV ($("$python" --version 2>&1))"
  start=$(now)
  rm -rf "$LOCALSTACK_VENV"
  "$(venv_bin uv)" venv --quiet --python "$python" "$LOCALSTACK_VENV"
  (cd "$LOCAL_DIR" && "$(venv_bin uv)" pip install --quiet --python "$LOCALSTACK_VENV/bin/python" \
    --exclude-newer "$LOCALSTACK_EXCLUDE_NEWER" -r "$LOCALSTACK_REQUIREMENTS")
  echo "$want" >"$LOCALSTACK_STAMP"
  log "LocalStack installed in $(($(now) - start))s"
}

install_rust_components() {
  # A minimal rustup profile lacks rustfmt/clippy, which `test` needs.
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) first"
  if command -v rustup >/dev/null 2>&1; then
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
  fi
}

# ------------------------------------------------------------------ up

all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do
    running_pid "$c" >/dev/null || return 1
  done
}

any_running() {
  local c
  for c in "${COMPONENTS[@]}"; do
    running_pid "$c" >/dev/null && return 0
  done
  return 1
}

answering() {
  http_ok "$MOTO_URL/moto-api/" &&
    { [[ $LANE != localstack ]] || http_ok "$LOCALSTACK_URL/_localstack/health"; } &&
    http_ok "$PROMETHEUS_URL/-/ready" &&
    port_open "$LAMBDA_PORT" &&
    [[ -f $RUN_DIR/stack.env ]]
}

# The lane the running stack was started in (empty when none).
saved_lane() {
  [[ -f $RUN_DIR/lane ]] && cat "$RUN_DIR/lane"
  return 0
}

cmd_up() {
  local arg
  for arg in "$@"; do
    case $arg in
      --localstack) set_lane localstack ;;
      *) die "up: unknown option $arg" ;;
    esac
  done
  [[ -x $(venv_bin python) && -f $STAMP ]] || cmd_install
  command -v prometheus >/dev/null 2>&1 || install_prometheus
  [[ $LANE != localstack ]] || install_localstack
  mkdir -p "$RUN_DIR"

  if [[ -n $(saved_lane) && $(saved_lane) != "$LANE" ]] && any_running; then
    log "running in the $(saved_lane) lane: restarting in the $LANE lane"
    cmd_down
  fi
  if all_running && answering; then
    log "already up"
    if [[ ${MODELWATCH_PARAMS:-} != "$(saved_params)" ]]; then
      log "warning: it runs with MODELWATCH_PARAMS='$(saved_params)'; run 'down' first to change them"
    fi
    print_urls
    return 0
  fi
  if any_running; then
    log "partially running: restarting"
    cmd_down
  fi
  local p
  local -a ports=("$MOTO_PORT" "$PROMETHEUS_PORT" "$LAMBDA_PORT")
  [[ $LANE != localstack ]] || ports+=("$LOCALSTACK_PORT")
  for p in "${ports[@]}"; do
    ! port_open "$p" || die "port $HOST:$p is taken by a process this script did not start"
  done
  rm -f "$RUN_DIR/stack.env"
  # Remembered for `reset`, which must re-create the same resources.
  printf '%s\n' "${MODELWATCH_PARAMS:-}" >"$RUN_DIR/template-params"
  echo "$LANE" >"$RUN_DIR/lane"

  start_moto
  [[ $LANE != localstack ]] || start_localstack
  start_prometheus
  provision
  prebuild_functions
  start_lambda
  log "up"
  print_urls
}

start_moto() {
  log "starting moto on $MOTO_URL"
  # moto_serial.py: moto's server with one request at a time (its backends race).
  start_bg moto "$RUN_DIR/moto.log" "$(venv_bin python)" "$LOCAL_DIR/moto_serial.py" -H "$HOST" -p "$MOTO_PORT"
  wait_for "moto" 60 http_ok "$MOTO_URL/moto-api/"
}

# LocalStack's open-source runtime on the host (no Docker): SNS, SQS, CloudWatch.
# Its files (tmp, volume, filesystem root) live under the run dir, fresh each `up`.
start_localstack() {
  local dir="$RUN_DIR/localstack" start
  log "starting LocalStack on $LOCALSTACK_URL (SNS, SQS, CloudWatch)"
  rm -rf "$dir"
  mkdir -p "$dir/tmp" "$dir/volume" "$dir/filesystem"
  start=$(now)
  # OVERRIDE_IN_DOCKER=0: host mode even inside a container, so every file goes
  # below FILESYSTEM_ROOT (else /var/lib/localstack). DNS_ADDRESS=0: no DNS server
  # (it would bind port 53). SQS_ENDPOINT_STRATEGY=path with LOCALSTACK_HOST: queue
  # URLs on this host and port, without DNS names.
  start_bg localstack "$RUN_DIR/localstack.log" env \
    OVERRIDE_IN_DOCKER=0 \
    GATEWAY_LISTEN="$HOST:$LOCALSTACK_PORT" \
    LOCALSTACK_HOST="$HOST:$LOCALSTACK_PORT" \
    SERVICES=sns,sqs,cloudwatch \
    SQS_ENDPOINT_STRATEGY=path \
    DNS_ADDRESS=0 \
    SKIP_SSL_CERT_DOWNLOAD=1 \
    DISABLE_EVENTS=1 \
    TMPDIR="$dir/tmp" \
    LOCALSTACK_VOLUME_DIR="$dir/volume" \
    FILESYSTEM_ROOT="$dir/filesystem" \
    "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main
  wait_for "LocalStack" 120 http_ok "$LOCALSTACK_URL/_localstack/health"
  log "LocalStack ready in $(($(now) - start))s"
}

start_prometheus() {
  log "starting prometheus on $PROMETHEUS_URL"
  # Fresh data each `up`: moto's state is in memory, so the metrics start over too.
  rm -rf "$RUN_DIR/prometheus-data"
  mkdir -p "$RUN_DIR/prometheus-data"
  # Without an out-of-order window Prometheus rejects remote-written samples
  # older than its head block ("too old sample"); the demo and the tests write
  # simulated hours in compressed time.
  cat >"$RUN_DIR/prometheus.yml" <<'EOF'
global:
  scrape_interval: 15s
storage:
  tsdb:
    out_of_order_time_window: 30d
EOF
  start_bg prometheus "$RUN_DIR/prometheus.log" prometheus \
    --config.file="$RUN_DIR/prometheus.yml" \
    --storage.tsdb.path="$RUN_DIR/prometheus-data" \
    --web.listen-address="$HOST:$PROMETHEUS_PORT" \
    --web.enable-remote-write-receiver \
    --web.enable-admin-api
  wait_for "prometheus" 60 http_ok "$PROMETHEUS_URL/-/ready"
}

saved_params() {
  [[ -f $RUN_DIR/template-params ]] && cat "$RUN_DIR/template-params"
  return 0
}

# Resources and the functions' environment, both from template.yaml.
provision() {
  log "creating resources from template.yaml in the emulator"
  local -a params=(
    # Required by the template but never contacted locally: the events carry
    # the authorizer's claims (API Gateway validated the token already).
    --param "JwtIssuer=http://$HOST/"
    --param "JwtAudience=modelwatch"
    --param "PrometheusRemoteWriteUrl=$PROMETHEUS_URL/api/v1/write"
  )
  local kv
  # shellcheck disable=SC2046 # word splitting of "Key=Value Key=Value" intended
  for kv in $(saved_params); do
    params+=(--param "$kv")
  done
  # The LocalStack lane: the SDK's per-service endpoint variables send SNS, SQS
  # and CloudWatch there; the topic, the queues and the subscriber are made there.
  local -a lane=(--stack-env "MODELWATCH_LANE=$LANE")
  if [[ $LANE == localstack ]]; then
    lane+=(
      --service-endpoint "sns=$LOCALSTACK_URL"
      --service-endpoint "sqs=$LOCALSTACK_URL"
      --function-env "AWS_ENDPOINT_URL_SNS=$LOCALSTACK_URL"
      --function-env "AWS_ENDPOINT_URL_SQS=$LOCALSTACK_URL"
      --function-env "AWS_ENDPOINT_URL_CLOUDWATCH=$LOCALSTACK_URL"
      --stack-env "LOCALSTACK_URL=$LOCALSTACK_URL"
    )
  fi
  # A 12-digit access key id: LocalStack takes it as the account id, which then
  # is moto's default account (123456789012), so ARNs agree across the emulators.
  "$(venv_bin python)" "$LOCAL_DIR/provision.py" \
    --template "$ROOT/template.yaml" \
    --endpoint "$MOTO_URL" \
    --region "$REGION" \
    --stack-name "$STACK_NAME" \
    "${params[@]}" \
    "${lane[@]}" \
    --function-env "AWS_ENDPOINT_URL=$MOTO_URL" \
    --function-env "AWS_REGION=$REGION" \
    --function-env "AWS_DEFAULT_REGION=$REGION" \
    --function-env "AWS_ACCESS_KEY_ID=123456789012" \
    --function-env "AWS_SECRET_ACCESS_KEY=test" \
    --function-env "AWS_EC2_METADATA_DISABLED=true" \
    --stack-env "LAMBDA_ENDPOINT=$LAMBDA_URL" \
    --stack-env "PROMETHEUS_URL=$PROMETHEUS_URL" \
    --stack-env "MODELWATCH_STACK=$STACK_NAME" \
    --functions-env-file "$RUN_DIR/functions.env" \
    --stack-env-file "$RUN_DIR/stack.env.partial" >"$RUN_DIR/provision.json"
  # stack.env appears only once everything answers (it doubles as "stack is up").
}

FUNCTIONS=(ingest aggregate evaluate api)

prebuild_functions() {
  # `cargo lambda watch` compiles a function at its first invocation with
  # `cargo run --bin <name>`; building here makes the first invoke fast. One
  # build per binary, like cargo run: building them together could unify
  # dependency features differently and make the first invoke rebuild anyway.
  log "building the function binaries"
  local f
  for f in "${FUNCTIONS[@]}"; do
    (cd "$ROOT" && cargo build --quiet --bin "$f")
  done
}

start_lambda() {
  log "starting cargo lambda watch on $LAMBDA_URL"
  # --ignore-changes: no file watching/reloading; --env-file: the template's env.
  (
    cd "$ROOT"
    PATH="$VENV/bin:$PATH" start_bg lambda "$RUN_DIR/lambda.log" \
      "$(venv_bin cargo-lambda)" lambda watch \
      --ignore-changes \
      --invoke-address "$HOST" \
      --invoke-port "$LAMBDA_PORT" \
      --env-file "$RUN_DIR/functions.env"
  )
  wait_for "cargo lambda watch" 120 port_open "$LAMBDA_PORT"
  mv "$RUN_DIR/stack.env.partial" "$RUN_DIR/stack.env"
}

print_urls() {
  cat >&2 <<EOF
[stack]   lane              $LANE
[stack]   AWS (moto)        $MOTO_URL          (reset: POST $MOTO_URL/moto-api/reset, then: stack.sh reset)
EOF
  if [[ $LANE == localstack ]]; then
    log "  SNS, SQS, CW      $LOCALSTACK_URL          (LocalStack)"
  fi
  cat >&2 <<EOF
[stack]   Prometheus        $PROMETHEUS_URL
[stack]   Lambda emulator   $LAMBDA_URL/2015-03-31/functions/<ingest|aggregate|evaluate|api>/invocations
[stack]   environment       $RUN_DIR/stack.env
EOF
}

# ------------------------------------------------------------------ down / status / reset

cmd_down() {
  local i
  for ((i = ${#ALL_COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop_component "${ALL_COMPONENTS[i]}"
  done
  rm -f "$RUN_DIR/stack.env" "$RUN_DIR/stack.env.partial" "$RUN_DIR/lane"
}

cmd_status() {
  local c pid url state rc=0
  [[ -z $(saved_lane) ]] || set_lane "$(saved_lane)"
  printf '%-11s %s\n' "lane" "$LANE"
  for c in "${COMPONENTS[@]}"; do
    case $c in
      moto) url="$MOTO_URL" ;;
      localstack) url="$LOCALSTACK_URL" ;;
      prometheus) url="$PROMETHEUS_URL" ;;
      lambda) url="$LAMBDA_URL" ;;
    esac
    if pid=$(running_pid "$c"); then
      state="running (pid $pid)"
    else
      state="stopped"
      pid=""
      rc=3
    fi
    printf '%-11s %-22s %s\n' "$c" "$state" "$url"
  done
  if [[ -f $RUN_DIR/stack.env ]]; then
    printf '%-11s %s\n' "env" "$RUN_DIR/stack.env"
  fi
  return $rc
}

# Emulator state gone (tests may POST /moto-api/reset): re-create the resources
# with the same names, so the running functions' environment stays valid.
cmd_reset() {
  running_pid moto >/dev/null || die "the stack is not up"
  [[ -z $(saved_lane) ]] || set_lane "$(saved_lane)"
  http_ok "$MOTO_URL/moto-api/reset" POST
  provision
  mv "$RUN_DIR/stack.env.partial" "$RUN_DIR/stack.env"
  log "emulator reset, resources re-created"
}

cmd_env() {
  [[ -f $RUN_DIR/stack.env ]] || die "the stack is not up"
  echo "$RUN_DIR/stack.env"
}

# Exports every KEY=VALUE line of stack.env (without eval'ing the values).
export_stack_env() {
  local line
  while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    export "${line%%=*}=${line#*=}"
  done <"$RUN_DIR/stack.env"
}

# ------------------------------------------------------------------ test

STEP_REPORT=()

# step <name> <command...>: runs one step, prints and records its duration.
step() {
  local name=$1 start rc
  shift
  printf '\n[stack] ==> %s\n' "$name" >&2
  start=$(now)
  # In a subshell with errexit re-enabled: `cmd || rc=$?` would switch errexit
  # off inside shell functions and let a failing command pass unnoticed.
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  set -e
  STEP_REPORT+=("$(printf '%-32s %5ss  %s' "$name" "$(($(now) - start))" "$([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")")")
  if [[ $rc != 0 ]]; then
    die "step '$name' failed with exit code $rc"
  fi
}

print_step_report() {
  local line
  printf '\n[stack] step timings:\n' >&2
  for line in "${STEP_REPORT[@]}"; do
    printf '[stack]   %s\n' "$line" >&2
  done
}

# A stack someone left running may serve stale binaries: start fresh.
restart_stack() {
  cmd_down
  cmd_up
}

run_cargo_tests() {
  (
    export_stack_env
    cd "$ROOT"
    cargo test --workspace --locked 2>&1 | tee -a "$RUN_DIR/cargo-test.log"
  )
}

# The LocalStack lane: the stack again, SNS, SQS and CloudWatch on LocalStack.
restart_stack_localstack() {
  cmd_down
  set_lane localstack
  cmd_up
}

# The tests of what the LocalStack lane routes differently: alerting (SNS, SQS),
# aggregation's exports (CloudWatch), the CloudWatch exporter and the SNS notifier.
run_cargo_tests_localstack() {
  (
    export_stack_env
    cd "$ROOT"
    {
      cargo test --locked -p modelwatch-e2e --test alerting --test aggregate &&
        cargo test --locked -p modelwatch --test cloudwatch_emulator --test alert_store_moto -- sns_notifier put_data
    } 2>&1 | tee -a "$RUN_DIR/cargo-test.log"
  )
}

# The whole suite's count as one closing line ("N passed, N failed"): cargo prints a
# result per test binary, the last of which is usually an empty doc-test run.
print_test_totals() {
  local log="$RUN_DIR/cargo-test.log"
  [[ -f $log ]] || return 0
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
       END { if (p + f > 0) printf "tests: %d passed, %d failed\n", p, f }' "$log"
}

TEST_STARTED=0

on_test_exit() {
  local rc=$?
  trap - EXIT INT TERM
  cmd_down || true
  print_step_report
  log "total $(($(now) - TEST_STARTED))s, exit code $rc"
  print_test_totals
  exit "$rc"
}

cmd_test() {
  TEST_STARTED=$(now)
  # The all-moto lane first, whatever MODELWATCH_LOCALSTACK says; then the LocalStack lane.
  set_lane all-moto
  # A log left by an earlier run must not be counted as this run's.
  rm -f "$RUN_DIR/cargo-test.log"
  # Always stop the stack, also on failure or Ctrl-C.
  trap on_test_exit EXIT
  trap 'exit 130' INT TERM
  cd "$ROOT"
  step "install" cmd_install
  step "install LocalStack" install_localstack
  step "cargo fmt --check" cargo fmt --all --check
  step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
  step "stack up" restart_stack
  step "cargo test" run_cargo_tests
  # The README's main job itself, short: on the running stack (which it leaves up),
  # exit 1 unless the summaries match the ground truth and only the degraded model alerts.
  step "demo (3 simulated hours)" env DEMO_HOURS=3 bash "$LOCAL_DIR/stack.sh" demo
  step "stack up (LocalStack lane)" restart_stack_localstack
  step "cargo test (LocalStack lane)" run_cargo_tests_localstack
  step "sam validate --lint" "$(venv_bin sam)" validate --lint --template-file template.yaml
  step "template least privilege" "$(venv_bin python)" "$LOCAL_DIR/check_template.py" --template template.yaml
  step "cfn-lint" "$(venv_bin cfn-lint)" template.yaml
  step "sam build" env PATH="$VENV/bin:$PATH" "$(venv_bin sam)" build --beta-features \
    --template-file template.yaml
  step "stack down" cmd_down
}

# ------------------------------------------------------------------ demo

on_demo_exit() {
  local rc=$?
  trap - EXIT INT TERM
  cmd_down || true
  exit "$rc"
}

cmd_demo() {
  local keep=false arg
  for arg in "$@"; do
    case $arg in
      --keep) keep=true ;;
      *) die "demo: unknown option $arg" ;;
    esac
  done
  # A stack that was already up belongs to someone else's session (a shell,
  # the e2e harness): the demo uses it and leaves it running.
  if all_running && answering; then
    log "the stack is already up: the demo uses it and leaves it running"
    keep=true
  fi
  if ! $keep; then
    trap on_demo_exit EXIT
    trap 'exit 130' INT TERM
  fi
  cmd_install
  cmd_up
  run_demo
  if $keep; then
    log "the stack stays up; stop it with: bash infra/local/stack.sh down"
    print_urls
  fi
}

# The demo proper: the traffic simulator (infra/simulator) as serving systems
# pushing 6 simulated hours of traffic for three models, one drifting and then
# failing; it drives aggregate and evaluate as the schedules would and prints the
# summaries, trends, the alerts the SNS subscriber got and values from Prometheus.
# DEMO_HOURS / DEMO_STEP_MINUTES change its length (DEMO_HOURS >= 3).
run_demo() {
  (cd "$ROOT" && cargo build --quiet --bin modelwatch-simulator)
  (
    export_stack_env
    "$ROOT/target/debug/modelwatch-simulator" \
      --lambda-endpoint "$LAMBDA_ENDPOINT" \
      --tenant "demo-$(date -u +%Y%m%d%H%M%S)" \
      --hours "${DEMO_HOURS:-6}" \
      --step-minutes "${DEMO_STEP_MINUTES:-10}" \
      --alert-queue-url "$ALERT_QUEUE_URL" \
      --prometheus-url "$PROMETHEUS_URL" \
      --check
  )
}

# ------------------------------------------------------------------ main

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    install) cmd_install ;;
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    env) cmd_env ;;
    test) cmd_test ;;
    demo) cmd_demo "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
