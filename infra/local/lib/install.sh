# shellcheck shell=bash disable=SC2153 # PYTHON, LANE: set by config.sh, lanes.sh
# `install`: the tools' venv, Prometheus, LocalStack's runtime, rustup components.
# Every function here is idempotent: it checks a stamp or a command first.

REQUIREMENTS="$LOCAL_DIR/requirements.txt"
CONSTRAINTS="$LOCAL_DIR/constraints.txt"
STAMP="$VENV/.modelwatch-requirements.sha256"
LOCALSTACK_VENV="${LOCALSTACK_VENV:-$LOCAL_DIR/.venv-localstack}"
LOCALSTACK_REQUIREMENTS="$LOCAL_DIR/requirements-localstack.txt"
LOCALSTACK_CONSTRAINTS="$LOCAL_DIR/constraints-localstack.txt"
LOCALSTACK_STAMP="$LOCALSTACK_VENV/.modelwatch-requirements.sha256"
# No release after this date is considered when resolving (uv's --exclude-newer).
LOCALSTACK_EXCLUDE_NEWER=2026-03-24

cmd_install() {
  install_python_tools
  install_prometheus
  install_openssl
  install_rust_components
  if [[ $LANE == localstack ]]; then
    install_localstack
  fi
}

requirements_hash() {
  { cat "$REQUIREMENTS" "$CONSTRAINTS"; "$PYTHON" --version 2>&1; } | sha256sum | cut -d' ' -f1
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

# apt_install COMMAND: Debian's package of that name when COMMAND is not on PATH;
# answers 1 when it was there already.
apt_install() {
  local tool=$1
  if command -v "$tool" >/dev/null 2>&1; then
    return 1
  fi
  log "installing $tool (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # `apt-get update` only when the package lists don't know the package yet.
  if ! apt-get install -y --no-install-recommends "$tool" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y --no-install-recommends "$tool" >/dev/null
  fi
  command -v "$tool" >/dev/null 2>&1 || die "$tool still not on PATH after apt-get install"
}

# openssl makes the local gateway's JWT key pair at `up`.
install_openssl() {
  apt_install openssl || true
}

install_prometheus() {
  apt_install prometheus || return 0
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
