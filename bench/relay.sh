#!/bin/bash
# Relay throughput: keeld against Postfix on the same machine, each taking
# mail over SMTP on 127.0.0.1 and relaying it to Postfix's smtp-sink on
# 127.0.0.2, driven by the same smtp-source command.  The clock runs from
# the first message sent to the last one received by the sink: messages per
# second delivered end to end.
#
#   bench/relay.sh            -s 10 -m 20000 -l 4096   (docs/benchmarks.md)
#   bench/relay.sh quick      -s 10 -m 2000 -l 4096    (while developing)
#
# keeld: smtp-source sends to fwd@bench.test, a local alias of
# someone@sink.test, so that relaying needs no AUTH (smtp-source has none);
# delivery.relayhost = [127.0.0.2]:SINK.  Postfix: a private instance
# (postfix -c DIR) with mynetworks = 127.0.0.0/8 and relayhost =
# [127.0.0.2]:SINK, sent to someone@sink.test.  Each server has a sink of its
# own (a fresh counter), and runs alone.  Both write the message durably
# before the 250 and keep it until the sink has said 250.
#
# Environment: KEEL_BIN=DIR uses keeld and keelctl from DIR instead of
# building build/release, KEEP=1 keeps the temp dir (logs), KEEL_WORKERS=N
# sets keel.conf `workers`, CONC=N the outbound sessions to the one
# destination for both servers (default 20, Postfix's
# default_destination_concurrency_limit).
set -euo pipefail

MODE="${1:-full}"
case "$MODE" in
full) M=20000 ;;
quick) M=2000 ;;
*) echo "usage: $0 [quick]" >&2; exit 2 ;;
esac
FLAGS="-s 10 -m $M -l 4096"
CONC="${CONC:-20}"
FROM=a@x.test

BENCH=relay
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_install_postfix
[ -x "$SMTP_SINK" ] || die "$SMTP_SINK missing (package postfix)"
bench_build
bench_tmp
bench_load_warning

# sink_start LABEL: a fresh smtp-sink on 127.0.0.2:$SINK_PORT counting into
# $TMP/sink.LABEL (-c: a "sess=N quit=N mesg=N" record per event).
sink_start() {
	SINK_PORT=$(free_port 127.0.0.2)
	SINK_OUT="$TMP/sink.$1"
	"$SMTP_SINK" -u nobody -c "127.0.0.2:$SINK_PORT" 1000 >"$SINK_OUT" 2>&1 &
	SINK_PID=$!
	BENCH_PIDS+=("$SINK_PID")
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.2/$SINK_PORT") 2>/dev/null && break
		[ "$i" -lt 100 ] || die "smtp-sink does not listen on 127.0.0.2:$SINK_PORT"
		sleep 0.05
	done
}
sink_count() {
	local n
	n=$(tail -c 200 "$SINK_OUT" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -n1)
	echo "${n:-0}"
}
sink_stop() { kill -TERM "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; }

# relay_run LABEL PORT RCPT SERVER_PID: smtp-source into the server, then
# waits for the sink to have every message.  Sets ACC (s until all
# accepted), ELAPSED (s until all at the sink), CPU (server tree seconds),
# SRC_CPU, M_BUSY.
relay_run() {
	local label=$1 port=$2 rcpt=$3 pid=$4 t0 t1 c0 b0 a0 b1 a1
	c0=$(tree_ticks "$pid")
	read -r b0 a0 < <(machine_ticks)
	t0=$(now)
	# shellcheck disable=SC2086
	if ! /usr/bin/time -f "%U %S" -o "$TMP/time.$label" \
		"$SMTP_SOURCE" $FLAGS -f "$FROM" -t "$rcpt" "127.0.0.1:$port" \
		>"$TMP/source.$label.out" 2>&1; then
		cat "$TMP/source.$label.out" >&2
		die "smtp-source failed ($label); output above"
	fi
	ACC=$(calc %.3f "$(now) - $t0")
	while [ "$(sink_count)" -lt "$M" ]; do
		[ "$(calc %.0f "$(now) - $t0")" -lt 900 ] ||
			die "$label: the sink has $(sink_count) of $M messages after 900s"
		sleep 0.05
	done
	t1=$(now)
	read -r b1 a1 < <(machine_ticks)
	ELAPSED=$(calc %.3f "$t1 - $t0")
	CPU=$(calc %.1f "($(tree_ticks "$pid") - $c0) / $HZ")
	SRC_CPU=$(awk '{ printf "%.2f", $1 + $2 }' "$TMP/time.$label")
	M_BUSY=$(calc %.0f "100 * ($b1 - $b0) / ($a1 - $a0)")
}

# ------------------------------------------------------------------ keeld
sink_start keel
keel_start
ctl domain add bench.test >/dev/null
ctl alias add fwd@bench.test someone@sink.test >/dev/null
ctl config set smtp.max_connections_per_ip 1000 >/dev/null
ctl config set limits.messages_per_hour 0 >/dev/null # smtp-source has no AUTH
ctl config set delivery.relayhost "[127.0.0.2]:$SINK_PORT" >/dev/null
ctl config set delivery.max_connections "$CONC" >/dev/null
ctl config set delivery.max_connections_per_domain "$CONC" >/dev/null
say "keeld: smtp-source $FLAGS -t fwd@bench.test, relayed to 127.0.0.2:$SINK_PORT ..."
relay_run keel "$KEEL_PORT" fwd@bench.test "$KEEL_PID"
K_ACC=$ACC K_EL=$ELAPSED K_CPU=$CPU K_SRC=$SRC_CPU K_BUSY=$M_BUSY
K_RATE=$(calc %.0f "$M / $K_EL")
delivered=$(ctl queue stats --json | sed -n 's/.*"delivered": *\([0-9]*\).*/\1/p')
[ "$delivered" = "$M" ] || say "WARNING: keeld's queue counts $delivered delivered, expected $M"
say "keeld: accepted in ${K_ACC}s, all at the sink after ${K_EL}s: $K_RATE msg/s, keeld CPU ${K_CPU}s"
keel_stop
keel_log_problems
sink_stop

# ---------------------------------------------------------------- postfix
sink_start postfix
pf_start relay <<EOF
mydestination =
local_recipient_maps =
relayhost = [127.0.0.2]:$SINK_PORT
default_destination_concurrency_limit = $CONC
smtp_tls_security_level = none
qmgr_clog_warn_time = 0
EOF
say "postfix: smtp-source $FLAGS -t someone@sink.test, relayed to 127.0.0.2:$SINK_PORT ..."
relay_run postfix "$PF_PORT" someone@sink.test "$PF_PID"
P_ACC=$ACC P_EL=$ELAPSED P_CPU=$CPU P_SRC=$SRC_CPU P_BUSY=$M_BUSY
P_RATE=$(calc %.0f "$M / $P_EL")
[ "$(pf_queued)" -eq 0 ] || say "WARNING: postfix still has $(pf_queued) queue files"
say "postfix: accepted in ${P_ACC}s, all at the sink after ${P_EL}s: $P_RATE msg/s, postfix CPU ${P_CPU}s"
pf_log_problems relay
pf_stop
sink_stop

# ------------------------------------------------------------------ table
echo
echo "Relay throughput, $(nproc) cores, load average before $LOAD0, after $(cut -d' ' -f1 /proc/loadavg), smtp-source $FLAGS, to smtp-sink on 127.0.0.2, $CONC sessions out ($MODE)"
printf '%-10s %14s %16s %10s %12s %10s %8s\n' server "accepted (s)" "at the sink (s)" "msg/s" "server CPU" "source" machine
printf '%-10s %14s %16s %10s %11ss %9ss %7s%%\n' keeld "$K_ACC" "$K_EL" "$K_RATE" "$K_CPU" "$K_SRC" "$K_BUSY"
printf '%-10s %14s %16s %10s %11ss %9ss %7s%%\n' postfix "$P_ACC" "$P_EL" "$P_RATE" "$P_CPU" "$P_SRC" "$P_BUSY"
echo "ratio keeld/postfix (delivered msg/s): $(calc %.2f "$K_RATE / $P_RATE")x"
