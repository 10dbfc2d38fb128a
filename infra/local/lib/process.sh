# shellcheck shell=bash
# Processes the stack starts: pid files, process groups, readiness polling.

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
# every child.
start_bg() {
  local name=$1 logfile=$2
  shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

# Descendant pids of $1, read from /proc (no procps needed): a child that
# started a session of its own is out of reach of its parent's process group.
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
  # Whatever the leader did not take down with it.
  for p in "${kids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      sleep 0.5
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  rm -f "$(pid_file "$name")"
}

# connected_to <pid> <port>: whether the process holds an established TCP
# connection to <port> on this host (read from /proc, no ss/netstat needed).
connected_to() {
  local pid=$1 fd link
  local -a inodes=()
  for fd in "/proc/$pid/fd/"*; do
    link=$(readlink "$fd" 2>/dev/null) || continue
    [[ $link == socket:\[*\] ]] && inodes+=("${link:8:-1}")
  done
  ((${#inodes[@]})) || return 1
  # Lines of /proc/net/tcp: sl local_address rem_address st ... inode (field 10);
  # addresses as HEXIP:HEXPORT, st 01 = ESTABLISHED.
  awk -v port="$(printf ':%04X' "$2")" -v inodes=" ${inodes[*]} " '
    substr($3, length($3) - 4) == port && $4 == "01" && index(inodes, " " $10 " ") { found = 1 }
    END { exit !found }' "/proc/$pid/net/tcp" "/proc/$pid/net/tcp6" 2>/dev/null
}
