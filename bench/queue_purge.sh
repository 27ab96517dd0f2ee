#!/bin/bash
# A 100,000-entry queue purge while another client keeps sending (issue 6):
# how long `keelctl queue delete --state queued --all` takes, whether every
# message the other client got a 250 for is in the mailbox, and that
# client's latency before and during the purge.
#
#   bench/queue_purge.sh          1000 messages x 100 remote recipients
#   bench/queue_purge.sh quick    100 x 100 (10,000 entries, as the e2e test)
#
# The queue is filled the way mail gets there: smtp-source sends -m messages
# to fwd@bench.test, a local alias of 100 remote addresses (ten domains), so
# each message makes 100 queue entries; delivery.max_connections = 0 keeps
# them queued.  The other client (Python smtplib, one connection, one
# message after the other) sends to the local user u@bench.test and logs
# each transaction's start and latency (MAIL FROM to the 250 after DATA).
#
# Environment: KEEL_BIN=DIR uses keeld and keelctl from DIR instead of
# building build/release, KEEP=1 keeps the temp dir (logs), KEEL_WORKERS=N
# sets keel.conf `workers`.
set -euo pipefail

MODE="${1:-full}"
case "$MODE" in
full) M=1000 ;;
quick) M=100 ;;
*) echo "usage: $0 [quick]" >&2; exit 2 ;;
esac
FANOUT=100
ENTRIES=$((M * FANOUT))

BENCH=queue_purge
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_install_postfix
bench_build
bench_tmp
bench_load_warning

keel_start
ctl domain add bench.test >/dev/null
ctl user add u@bench.test --name "Load" >/dev/null
targets=()
for i in $(seq 0 $((FANOUT - 1))); do targets+=("r$i@far$((i % 10)).test"); done
ctl alias add fwd@bench.test "${targets[@]}" >/dev/null
ctl config set smtp.max_connections_per_ip 1000 >/dev/null
ctl config set limits.messages_per_hour 0 >/dev/null # one client IP sends it all
ctl config set delivery.max_connections 0 >/dev/null

queued() { ctl queue stats --json | sed -n 's/.*"queued": *\([0-9]*\).*/\1/p'; }

say "filling the queue: smtp-source -s 10 -m $M -l 4096 -t fwd@bench.test ($ENTRIES entries) ..."
t0=$(now)
"$SMTP_SOURCE" -s 10 -m "$M" -l 4096 -f a@x.test -t fwd@bench.test "127.0.0.1:$KEEL_PORT" \
	>"$TMP/source.out" 2>&1 || { cat "$TMP/source.out" >&2; die "smtp-source failed"; }
FILL=$(calc %.1f "$(now) - $t0")
[ "$(queued)" -eq "$ENTRIES" ] || die "queued $(queued) entries, expected $ENTRIES"
say "queued $ENTRIES entries in ${FILL}s"

# The other client: runs until $TMP/stop exists; "start latency" per 250.
/usr/bin/python3 - "$KEEL_PORT" u@bench.test "$TMP/latency" "$TMP/stop" >"$TMP/client.out" 2>&1 <<'EOF' &
import os, smtplib, sys, time
port, rcpt, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = smtplib.SMTP("127.0.0.1", port, timeout=60)
n = 0
with open(out, "w") as f:
    while not os.path.exists(stop):
        n += 1
        msg = (f"From: <load@client.test>\r\nTo: <{rcpt}>\r\nSubject: load {n}\r\n"
               f"Message-ID: <L{n}@client.test>\r\n\r\n" + "x" * 70 + "\r\n")
        t0 = time.time()
        s.sendmail("load@client.test", [rcpt], msg)  # raises unless 250
        f.write(f"{t0:.6f} {time.time() - t0:.6f}\n")
        f.flush()
s.quit()
EOF
CLIENT_PID=$!
BENCH_PIDS+=("$CLIENT_PID")
sleep 2 # the client's latency before the purge, for comparison

ticks0=$(tree_ticks "$KEEL_PID")
p0=$(now)
ctl queue delete --state queued --all >"$TMP/purge.out"
p1=$(now)
PURGE=$(calc %.2f "$p1 - $p0")
PCPU=$(calc %.1f "($(tree_ticks "$KEEL_PID") - $ticks0) / $HZ")
sleep 2
touch "$TMP/stop"
wait "$CLIENT_PID" || { cat "$TMP/client.out" >&2; die "the other client failed"; }
[ "$(queued)" -eq 0 ] || die "$(queued) entries still queued after the purge"

ACCEPTED=$(wc -l <"$TMP/latency")
STORED=$(ctl user show u@bench.test --json | /usr/bin/python3 -c 'import json, sys
print([m["messages"] for m in json.load(sys.stdin)["mailboxes"] if m["name"] == "INBOX"][0])')
# before / during the purge: count, max and mean latency (ms)
lat() { awk -v a="$1" -v b="$2" '$1 >= a && $1 < b { n++; s += $2; if ($2 > m) m = $2 }
	END { printf "%d messages, max %.0f ms, mean %.1f ms", n, m * 1000, n ? s / n * 1000 : 0 }' "$TMP/latency"; }
keel_stop
keel_log_problems

echo
echo "Queue purge under load, $(nproc) cores, load average before $LOAD0, after $(cut -d' ' -f1 /proc/loadavg) ($MODE)"
echo "queued:  $ENTRIES entries ($M messages x $FANOUT recipients) in ${FILL}s"
echo "purge:   keelctl queue delete --state queued --all: ${PURGE}s wall, keeld CPU ${PCPU}s; $(cat "$TMP/purge.out")"
echo "client:  before the purge $(lat 0 "$p0")"
echo "         during the purge $(lat "$p0" "$p1")"
echo "         after the purge  $(lat "$p1" 9999999999)"
echo "mailbox: $ACCEPTED messages got a 250, $STORED in u@bench.test's INBOX"
[ "$ACCEPTED" -eq "$STORED" ] || die "the INBOX does not hold every accepted message"
