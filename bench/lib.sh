# Helpers shared by the bench scripts (sourced, bash, after `set -euo pipefail`).
#
# The caller sets BENCH (its name, for messages and config comments) first.
# Everything listens on 127.0.0.0/8 on free ports; every process started here
# is stopped by its PID on exit (bench_cleanup): keeld (KEEL_PID), the private
# Postfix (PF_PID) and whatever the caller adds to BENCH_PIDS.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="${KEEL_BIN:-$TOP/build/release}"
KEELD="$BIN/keeld"
KEELCTL="$BIN/keelctl"
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
POSTFIX=/usr/sbin/postfix
HZ=$(getconf CLK_TCK)

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

say() { printf '%s\n' "bench: $*" >&2; }
die() { say "$*"; exit 1; }

# Postfix brings smtp-source, smtp-sink and the peer server.
bench_install_postfix() {
	if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
		say "installing postfix (it does not start by itself here)"
		echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections
		echo "postfix postfix/mailname string bench.invalid" | $SUDO debconf-set-selections
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
	fi
	[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE missing (package postfix)"
}

# build/release, unless KEEL_BIN names binaries already built.
bench_build() {
	"$TOP/scripts/deps.sh" build
	if [ -z "${KEEL_BIN:-}" ]; then
		make -C "$TOP" --no-print-directory MODE=release all >&2
	fi
}

# A temp dir ($TMP) removed on exit unless KEEP is set, and the exit trap.
KEEL_PID="" PF_DIR="" PF_PID="" BENCH_PIDS=()
bench_tmp() {
	TMP=$(mktemp -d "/tmp/keel-$BENCH.XXXXXX")
	chmod 755 "$TMP" # the worker runs as `keel` when we are root
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}
bench_cleanup() {
	set +e
	keel_stop
	pf_stop
	for pid in "${BENCH_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null; fi
	done
	if [ -n "${KEEP:-}" ]; then say "kept $TMP"; else $SUDO rm -rf "$TMP"; fi
}

# free_port [ADDRESS]: a TCP port nothing listens on at ADDRESS (127.0.0.1).
free_port() {
	local p host=${1:-127.0.0.1}
	while :; do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/$host/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# CPU ticks (user+system) of a process, its reaped children and its live
# children: a monotone total for a server's whole process tree.
tree_ticks() {
	local pid=$1 t=0 c
	[ -r "/proc/$pid/stat" ] || { echo 0; return; }
	t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat")
	for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
		t=$((t + $(tree_ticks "$c")))
	done
	echo "$t"
}
# busy and total ticks of the whole machine
machine_ticks() { awk '/^cpu / { print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }

# Anything else busy on the machine skews the figures: say so rather than
# measure quietly.  Sets LOAD0.
bench_load_warning() {
	LOAD0=$(cut -d' ' -f1 /proc/loadavg)
	if awk "BEGIN { exit !($LOAD0 > 0.5) }"; then
		say "WARNING: load average $LOAD0 before the runs; busiest processes:"
		ps -eo pid,pcpu,comm --sort=-pcpu | sed -n 2,6p >&2
	fi
}

# ------------------------------------------------------------------ keeld

# keel_start [CONF LINES...]: keeld on 127.0.0.1:$KEEL_PORT (SMTP) in
# $TMP/keel, log_level warn, extra keel.conf lines as given; waits until
# keelctl answers.  Sets KEEL_PORT, SOCK, KEEL_PID.
keel_start() {
	local line
	KEEL_PORT=$(free_port)
	mkdir -p "$TMP/keel"
	{
		echo "# written by bench/$BENCH"
		echo "hostname = keel.bench.test"
		echo "data_dir = data"
		echo "log = $TMP/keel/keeld.log"
		echo "log_level = warn"
		echo "smtp.listen = 127.0.0.1:$KEEL_PORT"
		[ "$(id -u)" -eq 0 ] && echo "user = keel"
		[ -n "${KEEL_WORKERS:-}" ] && echo "workers = $KEEL_WORKERS"
		for line in "$@"; do echo "$line"; done
	} >"$TMP/keel/keel.conf"
	SOCK="$TMP/keel/data/keel.sock"
	"$KEELD" -f -c "$TMP/keel/keel.conf" 2>>"$TMP/keel/keeld.log" &
	KEEL_PID=$!
	for i in $(seq 200); do
		ctl status >/dev/null 2>&1 && break
		kill -0 "$KEEL_PID" 2>/dev/null || { cat "$TMP/keel/keeld.log" >&2; die "keeld exited"; }
		[ "$i" -lt 200 ] || die "keeld does not answer on $SOCK"
		sleep 0.1
	done
}
keel_stop() {
	if [ -n "$KEEL_PID" ] && kill -0 "$KEEL_PID" 2>/dev/null; then
		kill -TERM "$KEEL_PID"; wait "$KEEL_PID" 2>/dev/null || true
	fi
	KEEL_PID=""
}
# What keeld logged at warn and above, if anything.
keel_log_problems() {
	if grep -v -e '^$' "$TMP/keel/keeld.log" >/dev/null 2>&1; then
		say "keeld log (warn and above):"; tail -n 20 "$TMP/keel/keeld.log" >&2
	fi
}
ctl() { "$KEELCTL" -s "$SOCK" "$@"; }
status_num() { ctl status --json | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" | head -n1; }

# ---------------------------------------------------------------- postfix

# pf_start NAME: a private Postfix instance in $TMP/pf-NAME listening on
# 127.0.0.1:$PF_PORT; the lines on stdin are appended to its main.cf (the
# transports and destinations of the caller's variant).  Sets PF_DIR,
# PF_PORT, PF_PID.
pf_start() {
	local name=$1 port
	port=$(free_port)
	PF_PORT=$port
	PF_DIR="$TMP/pf-$name"
	mkdir -p "$PF_DIR/etc" "$PF_DIR/queue" "$PF_DIR/data" "$PF_DIR/mail"
	$SUDO chown postfix "$PF_DIR/data"
	cat >"$PF_DIR/etc/main.cf" <<EOF
# written by bench/$BENCH: a private Postfix instance
compatibility_level = 3.6
config_directory = $PF_DIR/etc
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.bench.test
mydomain = bench.test
myorigin = \$myhostname
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_banner = \$myhostname ESMTP
EOF
	cat >>"$PF_DIR/etc/main.cf"
	cat >"$PF_DIR/etc/master.cf" <<EOF
# written by bench/$BENCH; no chroot
127.0.0.1:$port inet n - n - - smtpd
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq      unix n - n - - showq
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
virtual    unix - n n - - virtual
smtp       unix - - n - - smtp
relay      unix - - n - - smtp
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
	# The postfix command logs to syslog (absent here) or a tty, then to maillog.
	if ! $SUDO "$POSTFIX" -c "$PF_DIR/etc" check >&2 ||
		! $SUDO "$POSTFIX" -c "$PF_DIR/etc" start >&2; then
		$SUDO tail -n 20 "$PF_DIR/maillog" >&2 || true
		die "postfix ($name) did not start"
	fi
	for i in $(seq 100); do
		PF_PID=$($SUDO cat "$PF_DIR/queue/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
		[ -n "$PF_PID" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		[ "$i" -lt 100 ] || die "postfix ($name) does not listen on 127.0.0.1:$port; see $PF_DIR/maillog"
		sleep 0.1
	done
}
pf_stop() {
	if [ -n "$PF_PID" ] && $SUDO kill -0 "$PF_PID" 2>/dev/null; then
		$SUDO kill -TERM "$PF_PID"
		for _ in $(seq 100); do $SUDO kill -0 "$PF_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	PF_PID=""
}
# messages still in the private queue (incoming, active, deferred)
pf_queued() { { $SUDO find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" -type f || true; } | wc -l; }
# warnings and worse in the private instance's log
pf_log_problems() {
	if $SUDO grep -E 'warning|fatal|panic|error' "$PF_DIR/maillog" >/dev/null 2>&1; then
		say "postfix ($1) log problems:"; $SUDO grep -E 'warning|fatal|panic|error' "$PF_DIR/maillog" | tail -n 10 >&2
	fi
}
