#!/usr/bin/env bash
# Hot upgrade of a running Palisade, by hand: a new process takes the listening sockets over
# from the old one, which finishes its in-flight requests and exits. New connections are
# never refused. See docs/operations.md ("Hot upgrade") for what happens at each step.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: deploy/upgrade.sh [-c CONFIG] [-b BINARY] [-p PID_FILE] [-w]

Replace the running Palisade with a new process (usually a new binary) without dropping
connections. The running process must have been started in the background (`run -d`) with
the same CONFIG, so that its pid is in PID_FILE and it listens on the configured
`server.upgrade_sock`.

  -c CONFIG    configuration file (default: /etc/palisade/palisade.yaml)
  -b BINARY    the Palisade binary to start (default: /usr/local/bin/palisade)
  -p PID_FILE  must equal `server.pid_file` in CONFIG (default: /run/palisade/palisade.pid)
  -w           wait until the old process has exited (it drains for up to
               server.grace_period + server.graceful_shutdown_timeout + 5 s)
  -h           show this help

Steps:
  1. BINARY check -c CONFIG           stop here if the configuration has any error
  2. read the old pid from PID_FILE   before the new process renames the file to PID_FILE.old
  3. BINARY run -u -d -c CONFIG &     waits on server.upgrade_sock for the sockets
  4. kill -QUIT OLD_PID               the old process hands its sockets over, then drains
  5. wait for step 3 to return        it returns once the new process is in the background
                                      and has written its pid to PID_FILE

Under systemd, use `systemctl reload palisade` instead: a process started from a shell is
outside the service and systemd would lose track of it.
EOF
}

config=/etc/palisade/palisade.yaml
binary=/usr/local/bin/palisade
pid_file=/run/palisade/palisade.pid
wait_old=false

while getopts ":c:b:p:wh" opt; do
    case "$opt" in
        c) config=$OPTARG ;;
        b) binary=$OPTARG ;;
        p) pid_file=$OPTARG ;;
        w) wait_old=true ;;
        h) usage; exit 0 ;;
        :) echo "upgrade: -$OPTARG needs a value" >&2; usage >&2; exit 2 ;;
        *) echo "upgrade: unknown option -$OPTARG" >&2; usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -ne 0 ]; then
    usage >&2
    exit 2
fi

say() { echo "upgrade: $*"; }
die() { echo "upgrade: $*" >&2; exit 1; }

[ -x "$binary" ] || die "$binary is not an executable file"
[ -r "$config" ] || die "cannot read $config"
# A process started with -d changes its working directory to /, so a relative configuration
# path would no longer be found by its reloads.
config=$(realpath -e "$config")

# 1. Once the old process has its SIGQUIT it shuts down whether or not a new process took
#    over, so nothing may be left to chance: check with the binary that is about to start.
say "checking $config with $binary"
"$binary" check -c "$config" || die "the configuration has errors; nothing was changed"

# 2. The new process renames PID_FILE to PID_FILE.old when it writes its own, so read the old
#    pid first.
[ -r "$pid_file" ] || die "no pid file at $pid_file; is Palisade running with -d?"
old_pid=$(tr -dc '0-9' <"$pid_file")
[ -n "$old_pid" ] || die "$pid_file holds no pid"
kill -0 "$old_pid" 2>/dev/null || die "process $old_pid from $pid_file is not running"
say "running process: $old_pid"

# 3. Start the new process. With -u it first waits (about 5 s) for the sockets on
#    server.upgrade_sock, and only then forks into the background.
say "starting: $binary run -u -d -c $config"
"$binary" run -u -d -c "$config" </dev/null &
launcher=$!

# Give it a moment to fail on its own (bad binary, unreadable file) before the old process is
# told to leave.
sleep 0.5
if ! kill -0 "$launcher" 2>/dev/null; then
    if wait "$launcher"; then
        die "the new process exited before taking the sockets over; the old one ($old_pid) is untouched"
    else
        die "the new process failed to start (exit $?); the old one ($old_pid) is untouched"
    fi
fi

# 4. Hand over.
say "sending SIGQUIT to $old_pid"
kill -QUIT "$old_pid"

# 5. The launcher returns once the new process has the sockets and is in the background.
if ! wait "$launcher"; then
    die "the new process failed after SIGQUIT was sent; process $old_pid is draining and will exit: start Palisade again now"
fi
new_pid=$(tr -dc '0-9' <"$pid_file" 2>/dev/null || true)
if [ -z "$new_pid" ] || [ "$new_pid" = "$old_pid" ] || ! kill -0 "$new_pid" 2>/dev/null; then
    die "no new process in $pid_file after the upgrade; check the error log (server.error_log)"
fi
say "new process: $new_pid (pid file $pid_file; the old pid is now in $pid_file.old)"

if $wait_old; then
    say "waiting for $old_pid to finish its in-flight requests"
    while kill -0 "$old_pid" 2>/dev/null; do
        sleep 1
    done
    say "process $old_pid has exited"
else
    say "process $old_pid drains in-flight requests for server.grace_period, then exits"
fi
say "done"
