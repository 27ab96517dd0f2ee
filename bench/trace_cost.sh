#!/usr/bin/env bash
# bench/trace_cost.sh [MESSAGES]: what the trace log costs in flushes and
# bytes written, trace.level=full against trace.level=off, for the same load.
#
# For each level, a fresh keeld (own data dir) with trace.level set, then
# two phases, each measured on its own:
#   smtp  MESSAGES messages (default 500, 4 KB bodies) over SMTP, 10 per
#         connection, to 10 accounts, by Python's smtplib;
#   imap  for every message, over one IMAP session per account (imaplib,
#         STARTTLS):
#         UID FETCH BODY[] (sets \Seen), UID STORE +FLAGS (\Flagged),
#         UID MOVE to Archive: 3 accesses per message.
# Figures per phase: flushes (`keelctl status` "flushes": blob fdatasyncs
# plus transaction commits) and bytes written (write_bytes in /proc/PID/io,
# summed over keeld's master and worker), per message and per IMAP access.
# After each phase the script waits 3 s before reading the counters, so that
# lazily committed trace events (STORE_DEFER_MS, about 1 s) are counted in
# the phase that made them.  Also prints the trace rows each level left.
set -euo pipefail
BENCH=trace_cost
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

MESSAGES=${1:-500}
ACCOUNTS=10
command -v sqlite3 >/dev/null || die "sqlite3 missing (apt-get install sqlite3)"
[ "$(id -u)" -eq 0 ] || die "run as root: the worker's /proc/PID/io is readable by root only"

[ -n "${KEEL_BIN:-}" ] || bench_build
bench_tmp
bench_load_warning

# Bytes written by keeld's master and its children (the worker).
keel_write_bytes() {
	local sum=0 pid
	for pid in "$KEEL_PID" $(cat /proc/"$KEEL_PID"/task/*/children 2>/dev/null); do
		sum=$((sum + $(awk '/^write_bytes:/ { print $2 }' "/proc/$pid/io")))
	done
	echo "$sum"
}

# phase_begin / phase_end NAME: counters before and after, into R_NAME_*.
phase_begin() { F0=$(status_num flushes); W0=$(keel_write_bytes); }
phase_end() {
	sleep 3
	eval "R_${LEVEL}_$1_F=$(($(status_num flushes) - F0))"
	eval "R_${LEVEL}_$1_W=$(($(keel_write_bytes) - W0))"
}

run_level() {
	LEVEL=$1
	keel_stop
	rm -rf "$TMP/keel"
	IMAP_PORT=$(free_port)
	keel_start "imap.listen = 127.0.0.1:$IMAP_PORT"
	ctl config set trace.level "$LEVEL" >/dev/null
	ctl domain add bench.test >/dev/null
	for i in $(seq 0 $((ACCOUNTS - 1))); do
		echo "bench password" | ctl user add "user$i@bench.test" --password-stdin >/dev/null
	done
	say "trace.level=$LEVEL: $MESSAGES messages over SMTP"
	phase_begin
	/usr/bin/python3 - "$KEEL_PORT" "$MESSAGES" "$ACCOUNTS" <<'EOF'
import smtplib, sys
port, n, accounts = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = "x" * 76 + "\r\n"
for start in range(0, n, 10):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        for k in range(start, min(n, start + 10)):
            rcpt = f"user{k % accounts}@bench.test"
            msg = (f"From: sender{k}@remote.example\r\nTo: {rcpt}\r\nSubject: m{k}\r\n"
                   f"Message-ID: <m{k}@remote.example>\r\n\r\n" + body * 53)
            s.sendmail(f"sender{k}@remote.example", [rcpt], msg.encode())
EOF
	phase_end smtp
	say "trace.level=$LEVEL: fetch, flag and move each message over IMAP"
	phase_begin
	/usr/bin/python3 - "$IMAP_PORT" "$ACCOUNTS" <<'EOF'
import imaplib, ssl, sys
port, accounts = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for a in range(accounts):
    im = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    im.starttls(ssl_context=ctx)
    im.login(f"user{a}@bench.test", "bench password")
    im.create("Archive")
    im.select("INBOX")
    uids = im.uid("SEARCH", "ALL")[1][0].split()
    for uid in uids:
        u = uid.decode()
        assert im.uid("FETCH", u, "(BODY[])")[0] == "OK"
        assert im.uid("STORE", u, "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert im.uid("MOVE", u, "Archive")[0] == "OK"
    im.logout()
EOF
	phase_end imap
	eval "R_${LEVEL}_rows=$(sqlite3 "$TMP/keel/data/keel.db" 'SELECT count(*) FROM trace')"
}

run_level full
run_level off
keel_stop

ACCESSES=$((MESSAGES * 3))
row() { # LEVEL PHASE DIVISOR UNIT
	local f w
	eval "f=\$R_$1_$2_F w=\$R_$1_$2_W"
	printf '| %-5s | %-4s | %6d | %6.2f | %10d | %8.0f |\n' "$1" "$2" "$f" \
		"$(calc "%.4f" "$f / $3")" "$w" "$(calc "%.1f" "$w / $3")"
}
echo
echo "trace.level full vs off: $MESSAGES messages over SMTP to $ACCOUNTS accounts, then"
echo "$ACCESSES IMAP accesses (FETCH BODY[], STORE +FLAGS, MOVE per message)"
echo "per unit: per message for smtp, per IMAP access for imap"
echo
echo "| level | phase | flushes | per unit | bytes written | per unit |"
echo "|---|---|---:|---:|---:|---:|"
for level in full off; do
	row "$level" smtp "$MESSAGES"
	row "$level" imap "$ACCESSES"
done
echo
echo "trace rows left: full $R_full_rows, off $R_off_rows"
echo "load average before: $LOAD0, after: $(cut -d' ' -f1 /proc/loadavg)"
keel_log_problems
