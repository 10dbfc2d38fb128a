# shellcheck shell=bash disable=SC2034 # read by the files that source this one
# Configuration from the environment, and the few helpers every script needs.
# Sourced by stack.sh and test.sh; the variables are documented at the top of stack.sh.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
LOCAL_DIR="$ROOT/infra/local"
VENV="${MODELWATCH_VENV:-$LOCAL_DIR/.venv}"
RUN_DIR="${MODELWATCH_RUN_DIR:-$LOCAL_DIR/.run}"
HOST=127.0.0.1
MOTO_PORT="${MOTO_PORT:-4566}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
LAMBDA_PORT="${LAMBDA_PORT:-9000}"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4567}"
GATEWAY_PORT="${GATEWAY_PORT:-3000}"
STACK_NAME="${MODELWATCH_STACK:-modelwatch-local}"
PYTHON="${PYTHON:-python3}"
REGION=us-east-1

MOTO_URL="http://$HOST:$MOTO_PORT"
PROMETHEUS_URL="http://$HOST:$PROMETHEUS_PORT"
LAMBDA_URL="http://$HOST:$LAMBDA_PORT"
LOCALSTACK_URL="http://$HOST:$LOCALSTACK_PORT"
GATEWAY_URL="http://$HOST:$GATEWAY_PORT"
# The local gateway's JWT authorizer: the template's JwtIssuer/JwtAudience here, the
# key pair made at `up` (its public half is the JWKS the gateway checks tokens with).
JWT_ISSUER="http://$HOST/"
JWT_AUDIENCE=modelwatch
JWT_KEY="$RUN_DIR/jwt-key.pem"
JWT_JWKS="$RUN_DIR/jwks.json"

# The workspace binaries the template deploys (BuildProperties.Binary of each
# function; check_template.py fails when the two lists disagree).
FUNCTIONS=(ingest aggregate evaluate api)

export SAM_CLI_TELEMETRY=0

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

# Whole seconds are precise enough for every duration reported here.
now() { date +%s; }

venv_bin() { echo "$VENV/bin/$1"; }

# Where cargo puts what it builds (CARGO_TARGET_DIR and cargo config included).
target_dir() {
  (cd "$ROOT" && cargo metadata --format-version 1 --no-deps) |
    "$(venv_bin python)" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# Exports every KEY=VALUE line of stack.env (without eval'ing the values).
export_stack_env() {
  local line
  while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    export "${line%%=*}=${line#*=}"
  done <"$RUN_DIR/stack.env"
}
