# shellcheck shell=bash disable=SC2153 # LANE: set by lanes.sh
# The stack's components: moto, LocalStack (its lane only), Prometheus, the
# Lambda emulator and the four function processes; `up`, `down`, `status`,
# `reset` and `env`.

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

saved_params() {
  [[ -f $RUN_DIR/template-params ]] && cat "$RUN_DIR/template-params"
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
  ensure_ports_free
  rm -f "$RUN_DIR/stack.env"
  # Remembered for `reset`, which must re-create the same resources.
  printf '%s\n' "${MODELWATCH_PARAMS:-}" >"$RUN_DIR/template-params"
  echo "$LANE" >"$RUN_DIR/lane"

  start_moto
  [[ $LANE != localstack ]] || start_localstack
  start_prometheus
  provision
  build_binaries
  start_lambda
  start_functions
  start_gateway
  start_shard_poller
  # stack.env appears only once everything answers (it doubles as "stack is up").
  mv "$RUN_DIR/stack.env.partial" "$RUN_DIR/stack.env"
  log "up"
  print_urls
}

ensure_ports_free() {
  local p
  local -a ports=("$MOTO_PORT" "$PROMETHEUS_PORT" "$LAMBDA_PORT" "$GATEWAY_PORT")
  [[ $LANE != localstack ]] || ports+=("$LOCALSTACK_PORT")
  for p in "${ports[@]}"; do
    ! port_open "$p" || die "port $HOST:$p is taken by a process this script did not start"
  done
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
  cat >"$RUN_DIR/prometheus.yml" <<'YAML'
global:
  scrape_interval: 15s
storage:
  tsdb:
    out_of_order_time_window: 30d
YAML
  start_bg prometheus "$RUN_DIR/prometheus.log" prometheus \
    --config.file="$RUN_DIR/prometheus.yml" \
    --storage.tsdb.path="$RUN_DIR/prometheus-data" \
    --web.listen-address="$HOST:$PROMETHEUS_PORT" \
    --web.enable-remote-write-receiver \
    --web.enable-admin-api
  wait_for "prometheus" 60 http_ok "$PROMETHEUS_URL/-/ready"
}

# Resources and the functions' environment, both from template.yaml.
provision() {
  log "creating resources from template.yaml in the emulator"
  local -a params=(
    # The local gateway's authorizer checks tokens for these (JWT_* in config.sh).
    --param "JwtIssuer=$JWT_ISSUER"
    --param "JwtAudience=$JWT_AUDIENCE"
    --param "PrometheusRemoteWriteUrl=$PROMETHEUS_URL/api/v1/write"
    # Four shard workers, not the template's 32: here one process per function
    # takes the workers' messages one after another, so more workers only add
    # invocations (the same shards, split finer). MODELWATCH_PARAMS overrides it.
    --param "ShardWorkers=4"
    # The segments of key `region` are exported too (tests/tests/versions.rs reads
    # them from Prometheus).
    --param "ExportedSegmentKeys=region"
  )
  local kv
  # shellcheck disable=SC2046 # word splitting of "Key=Value Key=Value" intended
  for kv in $(saved_params); do
    params+=(--param "$kv")
  done
  local -a lane
  mapfile -t lane < <(lane_provision_args)
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
    --stack-env "API_URL=$GATEWAY_URL" \
    --stack-env "JWT_ISSUER=$JWT_ISSUER" \
    --stack-env "JWT_AUDIENCE=$JWT_AUDIENCE" \
    --stack-env "JWT_KEY=$JWT_KEY" \
    --stack-env "MODELWATCH_STACK=$STACK_NAME" \
    --functions-env-file "$RUN_DIR/functions.env" \
    --stack-env-file "$RUN_DIR/stack.env.partial" >"$RUN_DIR/provision.json"
}

# The workspace's binaries in one cargo invocation: the four functions the stack
# serves and the demo's simulator. With MODELWATCH_BUILD_TESTS=1 (the test runner
# sets it) the test targets are built in the same invocation, so cargo resolves the
# dependencies' features once, dev-dependencies included (aws-smithy-mocks turns on
# the SDK's test-util), and `cargo test` reuses every crate: built without them, the
# binaries' AWS SDK and everything above it would be compiled a second time.
build_binaries() {
  local -a targets=(--bins)
  [[ ${MODELWATCH_BUILD_TESTS:-0} != 1 ]] || targets+=(--tests)
  log "building the workspace's ${targets[*]#--} (debug)"
  (cd "$ROOT" && cargo build --quiet --workspace "${targets[@]}")
}

# cargo lambda watch as the Lambda emulator only (Invoke API and Runtime API):
# it does not start the functions, which would mean `cargo run` per function and,
# with the dev-dependencies' features of the tests' build, compiling again.
start_lambda() {
  log "starting the Lambda emulator (cargo lambda watch) on $LAMBDA_URL"
  (
    cd "$ROOT" || exit
    PATH="$VENV/bin:$PATH" start_bg lambda "$RUN_DIR/lambda.log" \
      "$(venv_bin cargo-lambda)" lambda watch \
      --only-lambda-apis \
      --invoke-address "$HOST" \
      --invoke-port "$LAMBDA_PORT"
  )
  wait_for "cargo lambda watch" 120 port_open "$LAMBDA_PORT"
}

# One process per function, as Lambda runs one per sandbox: the debug binary the
# build left, polling the emulator's Runtime API under the function's name, with
# what cargo lambda watch gives the functions it starts itself (the template's
# environment from functions.env, version 1, 4096 MB).
start_functions() {
  local name bin dir
  local -a env
  dir=$(target_dir)
  mapfile -t env < <(grep -vE '^[[:space:]]*(#|$)' "$RUN_DIR/functions.env")
  for name in "${FUNCTIONS[@]}"; do
    bin="$dir/debug/$name"
    [[ -x $bin ]] || die "$bin is missing (the build should have made it)"
    start_bg "$name" "$RUN_DIR/$name.log" env "${env[@]}" \
      AWS_LAMBDA_FUNCTION_NAME="$name" \
      AWS_LAMBDA_FUNCTION_VERSION=1 \
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096 \
      AWS_LAMBDA_RUNTIME_API="http://$HOST:$LAMBDA_PORT/.rt/$name" \
      "$bin"
  done
  for name in "${FUNCTIONS[@]}"; do
    wait_for_function "$name"
  done
  log "${FUNCTIONS[*]} wait for events (logs: $RUN_DIR/<function>.log)"
}

# The HTTP API as API Gateway serves it (infra/gateway): the template's routes, the
# JWT authorizer with a key pair made here once (kept across `up`s, so a token stays
# valid), API Gateway's limits; requests go to the functions through the emulator.
start_gateway() {
  if [[ ! -f $JWT_KEY || ! -f $JWT_JWKS ]]; then
    log "making the local JWT key pair ($JWT_KEY, $JWT_JWKS)"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$JWT_KEY" 2>/dev/null
    openssl rsa -in "$JWT_KEY" -noout -modulus | cut -d= -f2 |
      "$(venv_bin python)" -c '
import base64, json, sys
n = bytes.fromhex(sys.stdin.read().strip())
print(json.dumps({"keys": [{"kty": "RSA", "kid": "local", "use": "sig", "alg": "RS256",
    "n": base64.urlsafe_b64encode(n).rstrip(b"=").decode(), "e": "AQAB"}]}))' >"$JWT_JWKS"
  fi
  log "starting the HTTP API gateway on $GATEWAY_URL"
  start_bg gateway "$RUN_DIR/gateway.log" "$(target_dir)/debug/modelwatch-gateway" serve \
    --template "$ROOT/template.yaml" \
    --lambda-endpoint "$LAMBDA_URL" \
    --jwks "$JWT_JWKS" \
    --issuer "$JWT_ISSUER" \
    --audience "$JWT_AUDIENCE" \
    --listen "$HOST:$GATEWAY_PORT"
  wait_for "the gateway" 30 port_open "$GATEWAY_PORT"
}

# A token for tenant $1, valid $2 seconds (default an hour), signed with the local
# key: `stack.sh token acme`.
cmd_token() {
  [[ $# -eq 1 || $# -eq 2 ]] || die "usage: stack.sh token TENANT [SECONDS]"
  [[ -f $JWT_KEY ]] || die "no local key yet: run stack.sh up first"
  "$(target_dir)/debug/modelwatch-gateway" token --key "$JWT_KEY" --kid local \
    --issuer "$JWT_ISSUER" --audience "$JWT_AUDIENCE" --tenant "$1" --ttl-seconds "${2:-3600}"
}

# Lambda's SQS event source mappings of the shard queues, which moto does not run:
# shard_poller.py feeds each queue's messages to its function (the workers).
start_shard_poller() {
  log "starting the shard queues' poller (the workers' event source mappings)"
  start_bg shards "$RUN_DIR/shards.log" "$(venv_bin python)" "$LOCAL_DIR/shard_poller.py" \
    --env-file "$RUN_DIR/stack.env.partial"
  wait_for "the shard poller" 30 polling_queues 2
}

# Whether the poller polls $1 queues (or has exited: then say why at once).
polling_queues() {
  running_pid shards >/dev/null || die "the shard poller exited: $(tail -n 5 "$RUN_DIR/shards.log")"
  (($(grep -c '"event": "polling"' "$RUN_DIR/shards.log") >= $1))
}

# Until the function is past its init: connected to the Runtime API, waiting for
# an event. One that fails its configuration exits instead: say so at once, not
# as a test timing out on its first invocation.
wait_for_function() {
  local name=$1 pid start
  start=$(now)
  until pid=$(running_pid "$name") && connected_to "$pid" "$LAMBDA_PORT"; do
    running_pid "$name" >/dev/null || die "function $name exited at start: $(tail -n 5 "$RUN_DIR/$name.log")"
    (($(now) - start < 60)) || die "function $name did not ask for an event within 60s (log: $RUN_DIR/$name.log)"
    sleep 0.2
  done
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
[stack]   HTTP API          $GATEWAY_URL/api/v1/monitoring/...  (token: stack.sh token TENANT)
[stack]   shard workers     fed from the shard queues by shard_poller.py (log: $RUN_DIR/shards.log)
[stack]   environment       $RUN_DIR/stack.env
EOF
}

cmd_down() {
  local i
  for ((i = ${#ALL_COMPONENTS[@]} - 1; i >= 0; i--)); do
    stop_component "${ALL_COMPONENTS[i]}"
  done
  rm -f "$RUN_DIR/stack.env" "$RUN_DIR/stack.env.partial" "$RUN_DIR/lane"
}

component_url() {
  case $1 in
    moto) echo "$MOTO_URL" ;;
    localstack) echo "$LOCALSTACK_URL" ;;
    prometheus) echo "$PROMETHEUS_URL" ;;
    lambda) echo "$LAMBDA_URL" ;;
    gateway) echo "$GATEWAY_URL" ;;
    shards) echo "$RUN_DIR/shards.log" ;;
    *) echo "$LAMBDA_URL/2015-03-31/functions/$1/invocations" ;;
  esac
}

cmd_status() {
  local c pid state rc=0
  [[ -z $(saved_lane) ]] || set_lane "$(saved_lane)"
  printf '%-11s %s\n' "lane" "$LANE"
  for c in "${COMPONENTS[@]}"; do
    if pid=$(running_pid "$c"); then
      state="running (pid $pid)"
    else
      state="stopped"
      rc=3
    fi
    printf '%-11s %-22s %s\n' "$c" "$state" "$(component_url "$c")"
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
