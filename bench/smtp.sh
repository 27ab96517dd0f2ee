#!/bin/bash
# SMTP throughput: keeld against Postfix on the same machine, both durable
# (a 250 to DATA only after the message is on disk), driven by the same
# Postfix smtp-source command.
#
#   bench/smtp.sh            -m 20000 and -m 50000   (docs/benchmarks.md)
#   bench/smtp.sh quick      -m 2000 and -m 5000     (while developing)
#
# Environment: KEEL_BIN=DIR uses keeld and keelctl from DIR instead of
# building build/release, KEEP=1 keeps the temp dir (logs), NO_MAILBOX=1 skips the
# Postfix-with-mailbox-delivery variant, KEEL_WORKERS=N sets keel.conf
# `workers`.
#
# Everything listens on 127.0.0.1 on free ports; the system Postfix (if any)
# is never touched: the Postfix under test is a private instance
# (`postfix -c DIR`) with its own config, queue and log.  Every process
# started here is stopped by its PID on exit.
set -euo pipefail

MODE="${1:-full}"
case "$MODE" in
full) M1=20000 M2=50000 ;;
quick) M1=2000 M2=5000 ;;
*) echo "usage: $0 [quick]" >&2; exit 2 ;;
esac
# name|smtp-source flags (the same for both servers)
LOADS=("s10|-s 10 -m $M1 -l 4096" "s50-d|-s 50 -d -m $M2 -l 4096")
FROM=a@x.test
RCPT=u@bench.test

TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN="${KEEL_BIN:-$TOP/build/release}"
KEELD="$BIN/keeld"
KEELCTL="$BIN/keelctl"
SMTP_SOURCE=/usr/sbin/smtp-source
POSTFIX=/usr/sbin/postfix
HZ=$(getconf CLK_TCK)

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

say() { printf '%s\n' "bench: $*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- install
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
	say "installing postfix (it does not start by itself here)"
	echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections
	echo "postfix postfix/mailname string bench.invalid" | $SUDO debconf-set-selections
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
fi
[ -x "$SMTP_SOURCE" ] || die "$SMTP_SOURCE missing (package postfix)"

# ------------------------------------------------------------------ build
"$TOP/scripts/deps.sh" build
if [ -z "${KEEL_BIN:-}" ]; then
	make -C "$TOP" --no-print-directory MODE=release all >&2
fi

# ------------------------------------------------------------ temp, trap
TMP=$(mktemp -d /tmp/keel-bench.XXXXXX)
chmod 755 "$TMP" # the worker runs as `keel` when we are root
KEEL_PID="" PF_DIR="" PF_PID=""
cleanup() {
	set +e
	if [ -n "$KEEL_PID" ] && kill -0 "$KEEL_PID" 2>/dev/null; then
		kill -TERM "$KEEL_PID"; wait "$KEEL_PID" 2>/dev/null
	fi
	pf_stop
	if [ -n "${KEEP:-}" ]; then say "kept $TMP"; else $SUDO rm -rf "$TMP"; fi
}
pf_stop() {
	if [ -n "$PF_PID" ] && $SUDO kill -0 "$PF_PID" 2>/dev/null; then
		$SUDO kill -TERM "$PF_PID"
		for _ in $(seq 100); do $SUDO kill -0 "$PF_PID" 2>/dev/null || break; sleep 0.1; done
	fi
	PF_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
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

# run_load LABEL PORT FLAGS... -> sets ELAPSED, SRC_CPU, M_BUSY (percent of all cores)
run_load() {
	local label=$1 port=$2; shift 2
	local t0 t1 b0 a0 b1 a1
	read -r b0 a0 < <(machine_ticks)
	t0=$(now)
	if ! /usr/bin/time -f "%U %S" -o "$TMP/time.$label" \
		"$SMTP_SOURCE" "$@" -f "$FROM" -t "$RCPT" "127.0.0.1:$port" \
		>"$TMP/source.$label.out" 2>&1; then
		cat "$TMP/source.$label.out" >&2
		die "smtp-source failed ($label); output above"
	fi
	t1=$(now)
	read -r b1 a1 < <(machine_ticks)
	ELAPSED=$(calc %.3f "$t1 - $t0")
	SRC_CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$TMP/time.$label")
	M_BUSY=$(calc %.0f "100 * ($b1 - $b0) / ($a1 - $a0)")
}

# Both servers share the machine with smtp-source: anything else busy skews
# the figures.  Say so rather than measure quietly.
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
if awk "BEGIN { exit !($LOAD0 > 0.5) }"; then
	say "WARNING: load average $LOAD0 before the runs; busiest processes:"
	ps -eo pid,pcpu,comm --sort=-pcpu | sed -n 2,6p >&2
fi

# ------------------------------------------------------------------ keeld
KEEL_PORT=$(free_port)
mkdir -p "$TMP/keel"
cat >"$TMP/keel/keel.conf" <<EOF
# written by bench/smtp.sh
hostname = keel.bench.test
data_dir = data
log = $TMP/keel/keeld.log
log_level = warn
smtp.listen = 127.0.0.1:$KEEL_PORT
EOF
[ "$(id -u)" -eq 0 ] && echo "user = keel" >>"$TMP/keel/keel.conf"
[ -n "${KEEL_WORKERS:-}" ] && echo "workers = $KEEL_WORKERS" >>"$TMP/keel/keel.conf"
SOCK="$TMP/keel/data/keel.sock"
ctl() { "$KEELCTL" -s "$SOCK" "$@"; }
status_num() { ctl status --json | sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" | head -n1; }

"$KEELD" -f -c "$TMP/keel/keel.conf" 2>>"$TMP/keel/keeld.log" &
KEEL_PID=$!
for i in $(seq 200); do
	ctl status >/dev/null 2>&1 && break
	kill -0 "$KEEL_PID" 2>/dev/null || { cat "$TMP/keel/keeld.log" >&2; die "keeld exited"; }
	[ "$i" -lt 200 ] || die "keeld does not answer on $SOCK"
	sleep 0.1
done
ctl domain add bench.test >/dev/null
ctl user add "$RCPT" --name "Bench" >/dev/null
ctl config set smtp.max_connections_per_ip 1000 >/dev/null
# smtp-source sends one RCPT per message (no -r): smtp.max_recipients (100) is enough.

declare -A K_RATE K_FPM K_CPU K_BUSY K_SRC P_RATE P_CPU P_BUSY P_SRC D_RATE D_ACC
for load in "${LOADS[@]}"; do
	name=${load%%|*} flags=${load#*|}
	m=$(sed 's/.*-m \([0-9]*\).*/\1/' <<<"$flags")
	f0=$(status_num flushes) c0=$(status_num commits) n0=$(status_num messages)
	k0=$(tree_ticks "$KEEL_PID")
	say "keeld   $name: smtp-source $flags ..."
	# shellcheck disable=SC2086
	run_load "keel.$name" "$KEEL_PORT" $flags
	f1=$(status_num flushes) c1=$(status_num commits) n1=$(status_num messages)
	k1=$(tree_ticks "$KEEL_PID")
	[ "$((n1 - n0))" -eq "$m" ] || say "WARNING: keeld stored $((n1 - n0)) messages, expected $m"
	K_RATE[$name]=$(calc %.0f "$m / $ELAPSED")
	K_FPM[$name]=$(calc %.3f "($f1 - $f0) / $m")
	K_CPU[$name]=$(calc %.1f "($k1 - $k0) / $HZ")
	K_BUSY[$name]=$M_BUSY K_SRC[$name]=$SRC_CPU
	say "keeld   $name: ${ELAPSED}s, ${K_RATE[$name]} msg/s, flushes $((f1 - f0)), commits $((c1 - c0)), keeld CPU ${K_CPU[$name]}s"
done
kill -TERM "$KEEL_PID"; wait "$KEEL_PID" || true; KEEL_PID=""
if grep -v -e '^$' "$TMP/keel/keeld.log" >/dev/null 2>&1; then
	say "keeld log (warn and above):"; tail -n 20 "$TMP/keel/keeld.log" >&2
fi

# ---------------------------------------------------------------- postfix
# pf_setup VARIANT: a private instance in $TMP/pf-VARIANT
#   discard  both transports are discard(8): queue file fsynced, then dropped
#   mailbox  bench.test is a virtual(8) domain: each message also written to a
#            Maildir (one fsynced file per message), like keeld's local delivery
pf_setup() {
	local variant=$1 port
	port=$(free_port)
	PF_PORT=$port
	PF_DIR="$TMP/pf-$variant"
	mkdir -p "$PF_DIR/etc" "$PF_DIR/queue" "$PF_DIR/data" "$PF_DIR/mail"
	$SUDO chown postfix "$PF_DIR/data"
	cat >"$PF_DIR/etc/main.cf" <<EOF
# written by bench/smtp.sh: a private Postfix instance
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
	if [ "$variant" = discard ]; then
		cat >>"$PF_DIR/etc/main.cf" <<EOF
mydestination = bench.test
local_recipient_maps =
local_transport = discard
default_transport = discard
EOF
	else
		$SUDO chown 65534:65534 "$PF_DIR/mail"
		cat >>"$PF_DIR/etc/main.cf" <<EOF
mydestination =
default_transport = discard
virtual_mailbox_domains = bench.test
virtual_transport = virtual
virtual_mailbox_base = $PF_DIR/mail
virtual_mailbox_maps = static:u/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_destination_concurrency_limit = 20
qmgr_clog_warn_time = 0
EOF
	fi
	cat >"$PF_DIR/etc/master.cf" <<EOF
# written by bench/smtp.sh; no chroot
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
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
	# The postfix command logs to syslog (absent here) or a tty, then to maillog.
	if ! $SUDO "$POSTFIX" -c "$PF_DIR/etc" check >&2 ||
		! $SUDO "$POSTFIX" -c "$PF_DIR/etc" start >&2; then
		$SUDO tail -n 20 "$PF_DIR/maillog" >&2 || true
		die "postfix ($variant) did not start"
	fi
	for i in $(seq 100); do
		PF_PID=$($SUDO cat "$PF_DIR/queue/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
		[ -n "$PF_PID" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		[ "$i" -lt 100 ] || die "postfix ($variant) does not listen on 127.0.0.1:$port; see $PF_DIR/maillog"
		sleep 0.1
	done
}
# messages still in the private queue (incoming, active, deferred)
pf_queued() { { $SUDO find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" -type f || true; } | wc -l; }
pf_delivered() { { $SUDO find "$PF_DIR/mail/u/new" -type f 2>/dev/null || true; } | wc -l; }

variants=(discard)
[ -n "${NO_MAILBOX:-}" ] || variants+=(mailbox)
for variant in "${variants[@]}"; do
	pf_setup "$variant"
	for load in "${LOADS[@]}"; do
		name=${load%%|*} flags=${load#*|}
		m=$(sed 's/.*-m \([0-9]*\).*/\1/' <<<"$flags")
		d0=$(pf_delivered)
		p0=$(tree_ticks "$PF_PID")
		say "postfix $variant $name: smtp-source $flags ..."
		t0=$(now)
		# shellcheck disable=SC2086
		run_load "pf-$variant.$name" "$PF_PORT" $flags
		acc=$ELAPSED
		# wait until the queue is empty (discard) or every message is in the Maildir
		while :; do
			if [ "$variant" = mailbox ]; then
				[ "$(($(pf_delivered) - d0))" -ge "$m" ] && break
			else
				[ "$(pf_queued)" -eq 0 ] && break
			fi
			[ "$(calc %.0f "$(now) - $t0")" -lt 600 ] || die "postfix ($variant) did not drain in 600s"
			sleep 0.05
		done
		drained=$(calc %.3f "$(now) - $t0")
		p1=$(tree_ticks "$PF_PID")
		if [ "$variant" = discard ]; then
			P_RATE[$name]=$(calc %.0f "$m / $acc")
			P_CPU[$name]=$(calc %.1f "($p1 - $p0) / $HZ")
			P_BUSY[$name]=$M_BUSY P_SRC[$name]=$SRC_CPU
		else
			D_ACC[$name]=$(calc %.0f "$m / $acc")
			D_RATE[$name]=$(calc %.0f "$m / $drained")
		fi
		say "postfix $variant $name: accepted in ${acc}s ($(calc %.0f "$m / $acc") msg/s), queue drained after ${drained}s, postfix CPU $(calc %.1f "($p1 - $p0) / $HZ")s"
	done
	if $SUDO grep -E 'warning|fatal|panic|error' "$PF_DIR/maillog" >/dev/null 2>&1; then
		say "postfix ($variant) log problems:"; $SUDO grep -E 'warning|fatal|panic|error' "$PF_DIR/maillog" | tail -n 10 >&2
	fi
	pf_stop
done

# ------------------------------------------------------------------ table
echo
echo "SMTP throughput, $(nproc) cores, load average before $LOAD0, after $(cut -d' ' -f1 /proc/loadavg), smtp-source -f $FROM -t $RCPT, 127.0.0.1 ($MODE)"
printf '%-30s %11s %12s %7s %14s\n' "load" "keeld msg/s" "postfix msg/s" "ratio" "keeld flush/msg"
for load in "${LOADS[@]}"; do
	name=${load%%|*} flags=${load#*|}
	printf '%-30s %11s %12s %6sx %14s\n' "$flags" "${K_RATE[$name]}" "${P_RATE[$name]}" \
		"$(calc %.2f "${K_RATE[$name]} / ${P_RATE[$name]}")" "${K_FPM[$name]}"
done
echo
echo "postfix = private instance, discard(8) transport; rate = accepted messages / wall time"
echo "CPU seconds during each run (server tree; smtp-source; whole machine busy):"
for load in "${LOADS[@]}"; do
	name=${load%%|*}
	echo "  $name: keeld ${K_CPU[$name]}s, source ${K_SRC[$name]}s, machine ${K_BUSY[$name]}% | postfix ${P_CPU[$name]}s, source ${P_SRC[$name]}s, machine ${P_BUSY[$name]}%"
done
if [ -z "${NO_MAILBOX:-}" ]; then
	echo "postfix with virtual(8) Maildir delivery (msg/s accepted, msg/s until all delivered):"
	for load in "${LOADS[@]}"; do
		name=${load%%|*}
		echo "  $name: ${D_ACC[$name]} accepted, ${D_RATE[$name]} delivered; keeld/postfix(delivered) $(calc %.2f "${K_RATE[$name]} / ${D_RATE[$name]}")x"
	done
fi
