#!/usr/bin/env bash
# pgtmp.sh: manage a throwaway PostgreSQL 15 cluster for development and tests.
#
#   contrib/pgtmp.sh start   DIR [PORT]  create (if needed) and start; prints the port
#   contrib/pgtmp.sh stop    DIR         fast shutdown (no-op when not running)
#   contrib/pgtmp.sh kill    DIR         immediate shutdown (crash-like)
#   contrib/pgtmp.sh restart DIR         fast restart on the same port
#   contrib/pgtmp.sh destroy DIR         stop, then delete DIR
#
# The cluster lives in DIR/data, logs to DIR/log, and puts its Unix socket in
# DIR. Auth is trust, superuser "postgres", encoding UTF8, TCP on 127.0.0.1.
# "start" prints only the port on stdout; everything else goes to stderr.
# On an existing cluster "start" keeps its port unless PORT is given.
#
# Environment (read when the cluster is created):
#   PGTMP_FAST=1                 fsync=off, synchronous_commit=off (loses durability)
#   PGTMP_WAL_LEVEL=LEVEL        wal_level (default logical)
#   PGTMP_NO_WAL2JSON_ALLOW=1    do not add wal2json to output_plugin_libraries
#   PGTMP_CONF=LINES             extra postgresql.conf lines (newline-separated)
# Always read:
#   PGTMP_BINDIR=PATH            PostgreSQL bin directory (default: pg_config
#                                --bindir if it is version 15, else
#                                /usr/lib/postgresql/15/bin)
#
# As root the cluster runs as user "postgres" (or a system user "pgtmp" that is
# created if "postgres" does not exist): PostgreSQL refuses to run as root.
set -euo pipefail

readonly kMarker=".pgtmp"
readonly kPortAttempts=8

Die() {
  echo "pgtmp: $*" >&2
  exit 1
}

Usage() {
  echo "usage: $0 {start DIR [PORT]|stop DIR|kill DIR|restart DIR|destroy DIR}" >&2
  exit 2
}

FindBindir() {
  if [[ -n "${PGTMP_BINDIR:-}" ]]; then
    [[ -x "$PGTMP_BINDIR/postgres" ]] || Die "no postgres in PGTMP_BINDIR=$PGTMP_BINDIR"
    echo "$PGTMP_BINDIR"
    return
  fi
  local dir version
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [[ -n "$dir" && -x "$dir/postgres" ]]; then
      version=$("$dir/postgres" --version 2>/dev/null || true)
      if [[ "$version" =~ \ 15\. ]]; then
        echo "$dir"
        return
      fi
    fi
  fi
  dir=/usr/lib/postgresql/15/bin
  [[ -x "$dir/postgres" ]] || Die "PostgreSQL 15 binaries not found (set PGTMP_BINDIR)"
  echo "$dir"
}

# Prints the user the cluster runs as when we are root; creates one if needed.
ClusterUser() {
  if id -u postgres >/dev/null 2>&1; then
    echo postgres
    return
  fi
  if ! id -u pgtmp >/dev/null 2>&1; then
    local nologin=/usr/sbin/nologin
    [[ -x "$nologin" ]] || nologin=/bin/false
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell "$nologin" pgtmp >&2 || Die "could not create system user pgtmp"
  fi
  echo pgtmp
}

# AsOwner CMD...: runs CMD as the cluster's owner (only differs when root).
# Runs from / so an unreadable working directory does not bother PostgreSQL.
AsOwner() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u "$owner" -- "$@")
  else
    (cd / && "$@")
  fi
}

# Prints a random port that no TCP socket uses, taken below the kernel's
# ephemeral range so outgoing connections do not grab it meanwhile. Checked
# with ss, or (without ss) by trying to connect. Racy by nature: CmdStart
# retries with another port when the server cannot bind. From 22000 up: the
# integration tests' receivers and APIs listen on fixed ports below it, and
# their shards run at once.
PickPort() {
  local low=22000 high=32767 ephemeral_low port i
  if read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
    ((ephemeral_low > low + 1000)); then
    high=$((ephemeral_low - 1))
  fi
  for ((i = 0; i < 100; i++)); do
    port=$((low + ((RANDOM << 15) | RANDOM) % (high - low + 1)))
    if command -v ss >/dev/null 2>&1; then
      if [[ -z "$(ss -Htan "sport = :$port" 2>/dev/null)" ]]; then
        echo "$port"
        return
      fi
    elif ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  Die "could not find a free port"
}

# Own FILE...: hands files we wrote as root to the cluster's owner.
Own() {
  if [[ $EUID -eq 0 ]]; then
    chown "$owner:" "$@"
  fi
}

IsRunning() {
  [[ -f "$data/PG_VERSION" ]] || return 1
  AsOwner "$bindir/pg_ctl" status -D "$data" >/dev/null 2>&1
}

LogTail() {
  if [[ -f "$log" ]]; then
    echo "---- last lines of $log ----" >&2
    tail -n 30 "$log" >&2
  fi
}

WritePort() {
  echo "port = $1" >"$data/pgtmp_port.conf"
  echo "$1" >"$dir/port"
  Own "$data/pgtmp_port.conf" "$dir/port"
}

InitCluster() {
  AsOwner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-locale \
    --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; Die "initdb failed"; }

  local describe plugin_line=""
  describe=$(AsOwner "$bindir/postgres" --describe-config 2>/dev/null || true)
  if [[ "${PGTMP_NO_WAL2JSON_ALLOW:-0}" != 1 ]] &&
    grep -q '^output_plugin_libraries[[:space:]]' <<<"$describe"; then
    plugin_line="output_plugin_libraries = 'pgoutput, test_decoding, wal2json'"
  fi

  {
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir'"
    echo "wal_level = ${PGTMP_WAL_LEVEL:-logical}"
    echo "max_replication_slots = 20"
    echo "max_wal_senders = 20"
    if [[ "${PGTMP_FAST:-0}" == 1 ]]; then
      echo "fsync = off"
      echo "synchronous_commit = off"
    fi
    if [[ -n "$plugin_line" ]]; then
      echo "$plugin_line"
    fi
    if [[ -n "${PGTMP_CONF:-}" ]]; then
      printf '%s\n' "$PGTMP_CONF"
    fi
  } >"$data/pgtmp.conf"
  {
    echo
    echo "# added by pgtmp.sh"
    echo "include 'pgtmp.conf'"
    echo "include 'pgtmp_port.conf'"
  } >>"$data/postgresql.conf"
  Own "$data/pgtmp.conf" "$dir/initdb.log"
}

# Starts the server; returns 3 when the port was taken, 1 on other failures.
StartServer() {
  local offset=0
  [[ -f "$log" ]] && offset=$(stat -c %s "$log")
  if AsOwner "$bindir/pg_ctl" start -w -s -D "$data" -l "$log" >&2; then
    return 0
  fi
  if tail -c +"$((offset + 1))" "$log" 2>/dev/null |
    grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets'; then
    return 3
  fi
  return 1
}

CmdStart() {
  local port="${1:-}"
  if [[ -n "$port" && ! "$port" =~ ^[0-9]+$ ]]; then
    Die "bad port: $port"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  data="$dir/data"
  log="$dir/log"
  if [[ ! -e "$dir/$kMarker" ]]; then
    [[ -z "$(ls -A "$dir")" ]] || Die "$dir is not empty and not a pgtmp directory"
    : >"$dir/$kMarker"
  fi

  if [[ $EUID -eq 0 ]]; then
    owner=$(ClusterUser)
    chown -R "$owner:" "$dir"
    chmod 0700 "$dir"
    runuser -u "$owner" -- test -w "$dir" ||
      Die "$dir is not reachable by user $owner (check parent directory permissions)"
  fi

  if [[ ! -f "$data/PG_VERSION" ]]; then
    InitCluster
  elif IsRunning; then
    if [[ -n "$port" && "$port" != "$(cat "$dir/port")" ]]; then
      Die "already running on port $(cat "$dir/port")"
    fi
    cat "$dir/port"
    return
  fi

  if [[ -n "$port" ]]; then
    WritePort "$port"
    StartServer || { LogTail; Die "could not start server on port $port"; }
  elif [[ -f "$data/pgtmp_port.conf" ]]; then
    StartServer || { LogTail; Die "could not start server on port $(cat "$dir/port")"; }
  else
    local attempt rc
    for ((attempt = 1; ; attempt++)); do
      WritePort "$(PickPort)"
      rc=0
      StartServer || rc=$?
      [[ $rc -eq 0 ]] && break
      if [[ $rc -ne 3 || $attempt -ge $kPortAttempts ]]; then
        LogTail
        Die "could not start server"
      fi
    done
  fi
  cat "$dir/port"
}

CmdStop() {
  local mode="$1"
  IsRunning || return 0
  if ! AsOwner "$bindir/pg_ctl" stop -w -s -m "$mode" -D "$data" >&2; then
    IsRunning && return 1
  fi
  return 0
}

CmdRestart() {
  [[ -f "$data/PG_VERSION" ]] || Die "no cluster in $dir"
  AsOwner "$bindir/pg_ctl" restart -w -s -m fast -D "$data" -l "$log" >&2 ||
    { LogTail; Die "restart failed"; }
}

CmdDestroy() {
  [[ -e "$dir" ]] || return 0
  [[ -e "$dir/$kMarker" ]] || Die "refusing to delete $dir: not a pgtmp directory"
  if [[ -f "$data/PG_VERSION" ]]; then
    CmdStop fast || CmdStop immediate || true
  fi
  rm -rf -- "$dir"
}

[[ $# -ge 2 ]] || Usage
cmd="$1"
dir="$2"
shift 2
[[ -n "$dir" ]] || Usage
# Absolute, since commands run from / (see AsOwner).
if [[ -d "$dir" ]]; then
  dir=$(cd "$dir" && pwd -P)
fi

bindir=$(FindBindir)
data="$dir/data"
log="$dir/log"
owner=""
if [[ $EUID -eq 0 && -d "$data" ]]; then
  owner=$(stat -c %U "$data")
fi

case "$cmd" in
  start) CmdStart "$@" ;;
  stop) CmdStop fast ;;
  kill) CmdStop immediate ;;
  restart) CmdRestart ;;
  destroy) CmdDestroy ;;
  *) Usage ;;
esac
