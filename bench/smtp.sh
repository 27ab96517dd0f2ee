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

BENCH=smtp
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_install_postfix
bench_build
bench_tmp

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

# Both servers share the machine with smtp-source.
bench_load_warning

# ------------------------------------------------------------------ keeld
keel_start
ctl domain add bench.test >/dev/null
ctl user add "$RCPT" --name "Bench" >/dev/null
ctl config set smtp.max_connections_per_ip 1000 >/dev/null
ctl config set limits.messages_per_hour 0 >/dev/null # one client IP sends it all
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
keel_stop
keel_log_problems

# ---------------------------------------------------------------- postfix
# pf_setup VARIANT: a private instance in $TMP/pf-VARIANT
#   discard  both transports are discard(8): queue file fsynced, then dropped
#   mailbox  bench.test is a virtual(8) domain: each message also written to a
#            Maildir (one fsynced file per message), like keeld's local delivery
pf_setup() {
	local variant=$1
	if [ "$variant" = discard ]; then
		pf_start "$variant" <<EOF
mydestination = bench.test
local_recipient_maps =
local_transport = discard
default_transport = discard
EOF
	else
		mkdir -p "$TMP/pf-$variant/mail"
		$SUDO chown 65534:65534 "$TMP/pf-$variant/mail"
		pf_start "$variant" <<EOF
mydestination =
default_transport = discard
virtual_mailbox_domains = bench.test
virtual_transport = virtual
virtual_mailbox_base = $TMP/pf-$variant/mail
virtual_mailbox_maps = static:u/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_destination_concurrency_limit = 20
qmgr_clog_warn_time = 0
EOF
	fi
}
# messages still in the private queue (incoming, active, deferred)
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
	pf_log_problems "$variant"
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
