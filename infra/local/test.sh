#!/usr/bin/env bash
# modelwatch's test command, run as `bash infra/local/stack.sh test` (README, .ci/run).
#
# The steps, each timed (the report closes the run, with the suite's totals):
#   install, fmt, the Python client's types and tests, the stack tools' tests, one
#   debug build of every target with clippy as the workspace's compiler, the whole
#   cargo test suite on the stack (all-moto lane), the README's demo for 3 simulated
#   hours with --check and the dashboard's queries after it, the LocalStack lane's
#   tests, the SAM and template checks, sam build and the release artifacts' sizes
#   and init times.
#
# Built once each: the debug build is linted as it is compiled (clippy-driver as
# RUSTC_WORKSPACE_WRAPPER, -D warnings, every target) and serves the stack, the tests
# and the demo (MODELWATCH_BUILD_TESTS=1: one feature resolution for all of them);
# the four release artifacts come from `cargo lambda build --release --bin <name>`
# (one invocation per function, each with its own features), started
# at the lowest CPU priority right after install, so that it runs on whatever CPU the
# builds, the I/O-bound tests, the demo and the LocalStack lane leave idle. It is
# waited for before the steps that need it; `sam build` then finds it up to date.
#
# Talks to the stack only through stack.sh's commands; the stack's configuration
# (ports, directories) is stack.sh's, from the same environment variables.
set -euo pipefail

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=lib/config.sh
. "$LIB/config.sh"
# shellcheck source=lib/process.sh
. "$LIB/process.sh"

STACK=(bash "$LOCAL_DIR/stack.sh")
TEST_LOG="$RUN_DIR/cargo-test.log"
RELEASE_LOG="$RUN_DIR/release-build.log"
# "<exit code> <end time>", written when the background release build ends.
RELEASE_RC="$RUN_DIR/release-build.rc"
RELEASE_PID=""
RELEASE_STARTED=0
TEST_STARTED=0
STEP_REPORT=()

# ------------------------------------------------------------------ steps

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
  record_step "$name" "$(($(now) - start))" "$([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")"
  if [[ $rc != 0 ]]; then
    die "step '$name' failed with exit code $rc"
  fi
}

record_step() {
  STEP_REPORT+=("$(printf '%-36s %5ss  %s' "$1" "$2" "$3")")
}

print_step_report() {
  local line
  printf '\n[stack] step timings:\n' >&2
  for line in "${STEP_REPORT[@]}"; do
    printf '[stack]   %s\n' "$line" >&2
  done
}

# The whole suite's count as one closing line ("N passed, N failed"): cargo prints a
# result per test binary, the last of which is usually an empty doc-test run.
print_test_totals() {
  [[ -f $TEST_LOG ]] || return 0
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
       /^[0-9]+ (passed|failed)[ ,]/ { for (i = 2; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
       END { if (p + f > 0) printf "tests: %d passed, %d failed\n", p, f }' "$TEST_LOG"
}

# ------------------------------------------------------------------ the stack

# A stack someone left running may serve stale binaries: start fresh. The
# all-moto lane whatever MODELWATCH_LOCALSTACK says; `--localstack` for the other.
restart_stack() {
  "${STACK[@]}" down
  MODELWATCH_LOCALSTACK=0 "${STACK[@]}" up "$@"
}

# The Python client (clients/python): its types under mypy --strict, then its tests
# against a fake HTTP API (their summary line counts in the totals).
run_python_client_checks() {
  (
    cd "$ROOT/clients/python"
    "$(venv_bin mypy)" src tests integration
    "$(venv_bin python)" -m pytest -q -p no:cacheprovider 2>&1 | tee -a "$TEST_LOG"
  )
}

# The Python client against the running stack, over HTTP through its gateway.
run_python_client_on_stack() {
  (
    cd "$ROOT/clients/python"
    "$(venv_bin python)" -m pytest -q -p no:cacheprovider integration 2>&1 | tee -a "$TEST_LOG"
  )
}

# The local stack's own tools: moto_speedups answers as moto does.
run_stack_tool_tests() {
  "$(venv_bin python)" -m pytest -q -p no:cacheprovider "$LOCAL_DIR/tests" 2>&1 | tee -a "$TEST_LOG"
}

run_cargo_tests() {
  (
    export_stack_env
    cargo test --workspace --locked 2>&1 | tee -a "$TEST_LOG"
  )
}

# After the demo, on the stack it leaves up: every Grafana panel's query over the
# demo's tenant and time range must return data (an ignored test: it needs the demo's
# traffic, and runs only here, by name).
run_demo_dashboards() {
  (
    export_stack_env
    cargo test --workspace --locked --test demo_dashboards -- --ignored 2>&1 | tee -a "$TEST_LOG"
  )
}

# The tests of what the LocalStack lane routes differently: alerting (SNS, SQS),
# aggregation's exports (CloudWatch), the CloudWatch exporter and the SNS notifier.
# Selected with --workspace and --test, not -p: with -p cargo resolves the features
# of that package alone and compiles much of the dependency graph again (minutes);
# with --workspace these are the test binaries the first lane ran.
run_cargo_tests_localstack() {
  (
    export_stack_env
    {
      cargo test --workspace --locked --test alerting --test aggregate --test fan_out &&
        cargo test --workspace --locked --test cloudwatch_emulator --test alert_store_moto -- sns_notifier put_data
    } 2>&1 | tee -a "$TEST_LOG"
  )
}

# ------------------------------------------------------------------ clippy

# The lints as `cargo clippy --workspace --all-targets -- -D warnings` sets them
# (cargo-clippy hands clippy-driver its arguments in CLIPPY_ARGS, joined this way).
CLIPPY_DENY_WARNINGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# Every debug build of this run compiles the workspace's crates with clippy-driver:
# one build lints and produces what the stack, the tests and the demo run, where
# `cargo clippy` checked the whole dependency graph once more (214 s of a 2-core
# run). Every cargo invocation after this sees the same wrapper, so none rebuilds;
# the release builds are plain rustc, as deployed (release_build, sam).
use_clippy_as_compiler() {
  RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" || die "clippy-driver not found (rustup component add clippy)"
  export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="$CLIPPY_DENY_WARNINGS"
}

# The wrapper's lints can fail a build: a crate with a warn-level clippy lint
# (needless_return) must not compile under CLIPPY_ARGS, and must without it. Guards
# against a clippy whose argument passing changed, which would let lints pass unseen.
check_clippy_denies() {
  local dir
  dir=$(mktemp -d)
  printf 'pub fn one() -> i32 {\n    return 1;\n}\n' >"$dir/lib.rs"
  if CLIPPY_ARGS="$CLIPPY_DENY_WARNINGS" "$RUSTC_WORKSPACE_WRAPPER" rustc --edition 2024 --crate-type lib --emit metadata --out-dir "$dir" "$dir/lib.rs" 2>"$dir/err"; then
    rm -rf "$dir"
    die "clippy-driver compiled a crate with a lint under -D warnings"
  fi
  grep -q 'clippy::needless_return' "$dir/err" || { cat "$dir/err" >&2; rm -rf "$dir"; die "clippy-driver failed, but not on the lint"; }
  env -u CLIPPY_ARGS "$RUSTC_WORKSPACE_WRAPPER" rustc --edition 2024 --crate-type lib --emit metadata --out-dir "$dir" "$dir/lib.rs" 2>/dev/null ||
    { rm -rf "$dir"; die "clippy-driver failed on a crate whose only lint is a warning"; }
  rm -rf "$dir"
}

# ------------------------------------------------------------------ release build

# release_build <niceness>: the deployable binaries, each exactly as `sam build`
# builds it (`cargo lambda build --release --bin <name>` in the workspace, same
# target directory), so that its builds find them up to date. One cargo invocation
# per function: each enables only its own modelwatch features (one invocation for
# all four would unify them), while the dependencies are compiled once for all.
release_build() {
  local f
  for f in "${FUNCTIONS[@]}"; do
    env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS PATH="$VENV/bin:$PATH" \
      nice -n "$1" "$(venv_bin cargo-lambda)" lambda build --release --locked --bin "$f"
  done
}

start_release_build() {
  rm -f "$RELEASE_RC"
  RELEASE_STARTED=$(now)
  log "release build started in the background at nice 19 (log: $RELEASE_LOG)"
  (
    rc=0
    release_build 19 >"$RELEASE_LOG" 2>&1 || rc=$?
    echo "$rc $(now)" >"$RELEASE_RC"
  ) &
  RELEASE_PID=$!
}

wait_release_build() {
  local rc end
  local -a pids
  # Waited for now: what is left of it runs at normal priority (the compilers it
  # starts from here on inherit cargo's).
  if [[ ! -f $RELEASE_RC ]] && command -v renice >/dev/null 2>&1; then
    mapfile -t pids < <(descendants "$RELEASE_PID")
    ((${#pids[@]} == 0)) || renice -n 0 -p "${pids[@]}" >/dev/null 2>&1 || true
  fi
  until [[ -f $RELEASE_RC ]]; do
    kill -0 "$RELEASE_PID" 2>/dev/null || die "the release build ended without a result"
    sleep 1
  done
  read -r rc end <"$RELEASE_RC"
  log "release build: exit code $rc after $((end - RELEASE_STARTED))s in the background"
  if [[ $rc != 0 ]]; then
    # Once again in the foreground, at normal priority, on what the first attempt
    # finished: a compile error repeats at once, a transient failure (a rustc that
    # could not be started once, seen on a loaded machine) does not fail the run.
    grep -E '^(error|warning: build failed)|^Caused by|^  ' "$RELEASE_LOG" | tail -n 8 >&2 || true
    log "building again in the foreground (log: $RELEASE_LOG)"
    release_build 0 2>&1 | tee -a "$RELEASE_LOG" | grep -vE '^ +(Compiling|Checking|Downloaded) ' >&2
  fi
}

release_build_rc() {
  local rc end
  read -r rc end <"$RELEASE_RC"
  echo "$rc"
}

release_build_seconds() {
  local rc end
  read -r rc end <"$RELEASE_RC"
  echo $((end - RELEASE_STARTED))
}

# On an early exit the release build is still running: it and its compilers stop too.
stop_release_build() {
  [[ -n $RELEASE_PID ]] && kill -0 "$RELEASE_PID" 2>/dev/null || return 0
  local -a pids
  mapfile -t pids < <(descendants "$RELEASE_PID")
  log "stopping the release build"
  kill -TERM "$RELEASE_PID" "${pids[@]}" 2>/dev/null || true
}

# ------------------------------------------------------------------ SAM

sam() { env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS PATH="$VENV/bin:$PATH" "$(venv_bin sam)" "$@"; }

# --no-cached: samconfig.toml's cache would hash the whole CodeUri (the repository,
# target/ included: gigabytes) per function before building anything.
sam_build() {
  sam build --beta-features --no-cached --template-file template.yaml
}

release_artifacts_report() {
  "$(venv_bin python)" "$LOCAL_DIR/artifacts.py" \
    --template template.yaml \
    --lambda-dir "$(target_dir)/lambda" \
    --env-file "$RUN_DIR/functions.env" \
    --budget-mb "${MODELWATCH_ZIP_BUDGET_MB:-5}"
}

# ------------------------------------------------------------------ main

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_release_build
  "${STACK[@]}" down || true
  print_step_report
  log "total $(($(now) - TEST_STARTED))s, exit code $rc"
  print_test_totals
  exit "$rc"
}

main() {
  TEST_STARTED=$(now)
  mkdir -p "$RUN_DIR"
  # A log left by an earlier run must not be counted as this run's.
  rm -f "$TEST_LOG"
  # Always stop the stack and the release build, also on failure or Ctrl-C.
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  cd "$ROOT"
  # Every debug build of this run (stack up, demo) with the test targets: one
  # feature resolution, nothing compiled twice.
  export MODELWATCH_BUILD_TESTS=1

  step "install" "${STACK[@]}" install
  # As soon as cargo-lambda is installed: the release build is the run's longest
  # path, and everything else leaves it a core only part of the time.
  start_release_build
  step "install LocalStack" env MODELWATCH_LOCALSTACK=1 "${STACK[@]}" install
  step "cargo fmt --check" cargo fmt --all --check
  step "layers (imports point inward)" python3 "$ROOT/infra/check/layers.py"
  step "python client (mypy --strict, pytest)" run_python_client_checks
  step "stack tools (pytest)" run_stack_tool_tests
  use_clippy_as_compiler
  step "clippy denies warnings" check_clippy_denies
  step "cargo build + clippy -D warnings (all targets)" cargo build --workspace --all-targets --locked
  step "stack up" restart_stack
  step "cargo test" run_cargo_tests
  step "python client on the stack (HTTP gateway)" run_python_client_on_stack
  # The README's main job itself, short, on a fresh stack as a user runs it; it
  # leaves the stack up. Exit 1 unless the summaries match the ground truth, every
  # late label joined, the degraded model's incident rules fired and resolved once
  # each, the silent model's estimate held its realized accuracy and its shift
  # alerted, and nothing else alerted (the simulator's --check). Batches of 15
  # simulated minutes instead of the demo's 10: two thirds of the batches, every
  # check the same (the incident's 20 minutes still hold an evaluation whose 5-minute
  # window lies inside it). Then the dashboard's queries over what it wrote.
  step "stack up (fresh, for the demo)" restart_stack
  step "demo (3 simulated hours)" env DEMO_HOURS=3 DEMO_STEP_MINUTES=15 "${STACK[@]}" demo
  step "dashboards after the demo" run_demo_dashboards
  step "stack up (LocalStack lane)" restart_stack --localstack
  step "cargo test (LocalStack lane)" run_cargo_tests_localstack
  step "sam validate --lint" sam validate --lint --template-file template.yaml
  step "template least privilege" "$(venv_bin python)" "$LOCAL_DIR/check_template.py" --template template.yaml
  step "cfn-lint" "$(venv_bin cfn-lint)" template.yaml
  step "release build (waiting for it)" wait_release_build
  record_step "  (release build in the background)" "$(release_build_seconds)" "nice 19, from after install, exit code $(release_build_rc)"
  step "sam build" sam_build
  # With the LocalStack lane still up: the functions' environment is its functions.env.
  step "release artifacts" release_artifacts_report
  step "stack down" "${STACK[@]}" down
}

main "$@"
