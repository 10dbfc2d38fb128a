# shellcheck shell=bash
# `demo`: the main job. Install, up, the traffic simulator with --check, down.

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
  # the e2e harness, the test runner): the demo uses it and leaves it running.
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
# pushing 6 simulated hours of traffic for four models, one drifting and then
# failing, one whose labels arrive 1-3 hours late; it drives aggregate and evaluate as the schedules would and prints the
# summaries, trends, the alerts the SNS subscriber got and values from Prometheus.
# DEMO_HOURS / DEMO_STEP_MINUTES change its length (DEMO_HOURS >= 3).
# Its tenant and the start of its traffic go to $RUN_DIR/demo.env, for checks that
# run on what it left (test.sh's dashboard queries).
run_demo() {
  # The same build as `up`'s (a no-op after it): the simulator is one of its binaries.
  build_binaries
  local simulator tenant hours
  simulator="$(target_dir)/debug/modelwatch-simulator"
  tenant="demo-$(date -u +%Y%m%d%H%M%S)"
  hours="${DEMO_HOURS:-6}"
  printf 'DEMO_TENANT=%s\nDEMO_FROM=%s\n' "$tenant" \
    "$(date -u -d "-${hours} hours -2 minutes" +%Y-%m-%dT%H:%M:%SZ)" >"$RUN_DIR/demo.env"
  (
    export_stack_env
    # Its batches and API calls go over HTTP through the gateway, as a serving
    # system's would; aggregate and evaluate are invoked as their schedules would.
    "$simulator" \
      --lambda-endpoint "$LAMBDA_ENDPOINT" \
      --tenant "$tenant" \
      --api-url "$API_URL" \
      --token "$(cmd_token "$tenant" 86400)" \
      --hours "$hours" \
      --step-minutes "${DEMO_STEP_MINUTES:-10}" \
      --alert-queue-url "$ALERT_QUEUE_URL" \
      --prometheus-url "$PROMETHEUS_URL" \
      --check
  )
}
