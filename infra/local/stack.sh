#!/usr/bin/env bash
# modelwatch local stack: one entry point for the emulated AWS environment.
#
#   bash infra/local/stack.sh install       tools: venv (moto, SAM CLI, cfn-lint, cargo-lambda), prometheus
#   bash infra/local/stack.sh up            moto + Prometheus + resources from template.yaml + the functions
#   bash infra/local/stack.sh up --localstack   ... plus LocalStack for SNS, SQS, CloudWatch (the LocalStack lane)
#   bash infra/local/stack.sh down          stop exactly what `up` started
#   bash infra/local/stack.sh status        what runs where
#   bash infra/local/stack.sh reset         wipe emulator state, re-create the resources (same names)
#   bash infra/local/stack.sh env           print the stack.env path (for `set -a; . "$(...)"`)
#   bash infra/local/stack.sh token TENANT  a JWT for TENANT, for the HTTP API on 127.0.0.1:3000
#   bash infra/local/stack.sh test          THE test command (infra/local/test.sh: fmt, clippy,
#                                           e2e tests in both lanes, demo, SAM checks, release build)
#   bash infra/local/stack.sh demo [--keep] the main job: install, up, demo, down
#
# Every subcommand is idempotent. Configuration (environment):
#   MODELWATCH_VENV      venv directory                 (default infra/local/.venv)
#   MODELWATCH_RUN_DIR   pids, logs, data, stack.env    (default infra/local/.run)
#   MOTO_PORT            moto server                    (default 4566, LocalStack's port)
#   PROMETHEUS_PORT      Prometheus                     (default 9090)
#   LAMBDA_PORT          cargo lambda watch             (default 9000)
#   GATEWAY_PORT         the HTTP API (infra/gateway)   (default 3000)
#   MODELWATCH_STACK     local stack / name prefix      (default modelwatch-local)
#   MODELWATCH_PARAMS    extra template parameters, "Key=Value Key=Value"
#                        (e.g. "TimestreamEnabled=false")
#   PYTHON               interpreter for the venv       (default python3)
#   MODELWATCH_LOCALSTACK 1: `up` runs the LocalStack lane (= up --localstack)
#   LOCALSTACK_PORT      LocalStack's gateway           (default 4567)
#   LOCALSTACK_PYTHON    a Python 3.13 for its venv     (default python3.13, else pyenv's 3.13)
#   LOCALSTACK_VENV      its venv                       (default infra/local/.venv-localstack)
#   MODELWATCH_BUILD_TESTS 1: `up` and `demo` build the test targets with the binaries
#                        (one feature resolution; the test command sets it)
#   MODELWATCH_ZIP_BUDGET_MB  `test` fails when a zipped function exceeds it (default 5)
#
# Lanes (stack.env's MODELWATCH_LANE): all-moto, the default, serves every AWS API
# from moto; localstack routes SNS, SQS and CloudWatch to LocalStack's runtime with
# the SDK's AWS_ENDPOINT_URL_<SERVICE> variables (DynamoDB, Timestream stay on moto).
#
# The code: lib/config.sh (the variables above, helpers), lib/process.sh (pid files,
# process groups), lib/install.sh, lib/lanes.sh, lib/components.sh (up, down, status,
# reset, env), lib/demo.sh; the test runner is test.sh.
set -euo pipefail

LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=lib/config.sh
. "$LIB/config.sh"
# shellcheck source=lib/process.sh
. "$LIB/process.sh"
# shellcheck source=lib/lanes.sh
. "$LIB/lanes.sh"
# shellcheck source=lib/install.sh
. "$LIB/install.sh"
# shellcheck source=lib/components.sh
. "$LIB/components.sh"
# shellcheck source=lib/demo.sh
. "$LIB/demo.sh"

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
    token) cmd_token "$@" ;;
    test) exec bash "$LOCAL_DIR/test.sh" "$@" ;;
    demo) cmd_demo "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
