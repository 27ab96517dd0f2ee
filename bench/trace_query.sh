#!/usr/bin/env bash
# bench/trace_query.sh [EVENTS]: `keelctl trace` over a trace log of EVENTS
# (default 1,000,000) realistic events, for each filter.
#
# keeld is started once to create its schema and stopped; the events are
# written into its keel.db by sqlite3 in one transaction (keeld must not run
# while something else writes its database): EVENTS/8 messages spread over
# 90 days, each with six SMTP events (connect, mail, rcpt, accepted,
# delivered, disconnect: queue id, Message-ID, sender, recipient, client IP)
# and two IMAP access events (fetched, flags: account, Message-ID, the
# user's IP), from 2000 accounts, 20,000 remote senders in 500 domains and
# 40,000 client IPs.  Then keeld is started again and each filter is timed
# (RUNS runs, default 10, wall time of the whole keelctl command, the
# admin socket round trip included); a message in the middle of the 90 days
# is the target.  Prints a table: filter, events found, min/median/max ms.
set -euo pipefail
BENCH=trace_query
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

EVENTS=${1:-1000000}
RUNS=${RUNS:-10}
MESSAGES=$((EVENTS / 8))
command -v sqlite3 >/dev/null || die "sqlite3 missing (apt-get install sqlite3)"

[ -n "${KEEL_BIN:-}" ] || bench_build
bench_tmp
bench_load_warning

keel_start
DB="$TMP/keel/data/keel.db"
keel_stop

say "writing $EVENTS events ($MESSAGES messages over 90 days) into $DB"
NOW=$(date +%s)
T0=$(now)
# Message k at time START + k * SPAN / MESSAGES; its events a few seconds
# apart, its reads by the account's client an hour later.
sqlite3 "$DB" <<EOF
PRAGMA journal_mode = WAL;
BEGIN;
WITH RECURSIVE m(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM m WHERE k < $MESSAGES - 1),
ev(j, event, protocol, late) AS (VALUES (0, 'connect', 'smtp', 0), (1, 'mail', 'smtp', 0),
	(2, 'rcpt', 'smtp', 0), (3, 'accepted', 'smtp', 0), (4, 'delivered', 'smtp', 0),
	(5, 'disconnect', 'smtp', 0), (6, 'fetched', 'imap', 1), (7, 'flags', 'imap', 1)),
msg AS (SELECT k,
	$NOW - 90 * 86400 + k * (90 * 86400) / $MESSAGES AS t,
	printf('Q%010X', k * 2654435761 % 1099511627776) AS queue_id,
	printf('<%d.%d@sender%d.example>', k, k % 977, k % 500) AS message_id,
	printf('user%d@bench.test', k * 7919 % 2000) AS account,
	k * 7919 % 2000 AS a,
	printf('sender%d@sender%d.example', k * 104729 % 20000, k * 104729 % 20000 % 500) AS sender,
	printf('198.%d.%d.%d', 18 + k * 31 % 2, k * 37 % 160, k * 101 % 125) AS ip
	FROM m)
INSERT INTO trace(time, queue_id, message_id, event, account, protocol, client_ip,
	session, sender, rcpt, detail)
SELECT t + j + late * 3600,
	CASE WHEN late THEN NULL ELSE queue_id END,
	message_id, event,
	CASE WHEN late OR j = 4 THEN account ELSE NULL END,
	protocol,
	CASE WHEN late THEN printf('10.%d.%d.%d', a / 250, a % 250, 1 + k % 3) ELSE ip END,
	printf('%08x', CASE WHEN late THEN k * 40503 + 1 ELSE k * 40503 END % 4294967296),
	CASE WHEN late THEN NULL ELSE sender END,
	CASE WHEN late OR j < 2 THEN NULL ELSE account END,
	CASE j WHEN 2 THEN 'accepted 250 2.1.5 (local)' WHEN 3 THEN 'size=4211 rcpts=1'
		WHEN 4 THEN 'mailbox=INBOX uid=' || (k / 2000 + 1)
		WHEN 6 THEN 'mailbox=INBOX uid=' || (k / 2000 + 1) || ' BODY[]'
		WHEN 7 THEN '+\Seen' ELSE '' END
FROM msg, ev ORDER BY 1;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
FILL=$(calc "%.1f" "$(now) - $T0")
ROWS=$(sqlite3 "$DB" "SELECT count(*) FROM trace")
SIZE=$(du -m "$DB" | cut -f1)
say "$ROWS events in $FILL s; keel.db $SIZE MB"

# The target: message k = MESSAGES/2, in the middle of the 90 days.
read -r QID MID ACCT SENDER IP RCPT_T <<<"$(sqlite3 -separator ' ' "$DB" \
	"SELECT queue_id, message_id, account, sender, client_ip, time FROM trace
	 WHERE id = (SELECT MIN(id) FROM trace WHERE time >= $NOW - 45 * 86400 AND event = 'delivered')")"
DAY=$(date -d "@$RCPT_T" +%Y-%m-%d)
NEXT=$(date -d "@$((RCPT_T + 86400))" +%Y-%m-%d)

keel_start

# time_filter LABEL ARGS...: RUNS runs of keelctl trace ARGS --json (of
# keelctl status --json when ARGS is "status").
time_filter() {
	local label=$1 ms=() found=- t0 t1 i cmd=(trace)
	shift
	if [ "$1" = status ]; then cmd=(); else
		found=$(ctl trace "$@" --json | sed -n 's/^ *"events": *\([0-9]*\).*/\1/p' | head -n1)
	fi
	for i in $(seq "$RUNS"); do
		t0=$(date +%s%N)
		ctl "${cmd[@]}" "$@" --json >/dev/null
		t1=$(date +%s%N)
		ms+=("$(calc "%.1f" "($t1 - $t0) / 1000000")")
	done
	printf '%s\n' "${ms[@]}" | sort -n | awk -v l="$label" -v f="$found" '
		{ v[NR] = $1 } END { printf "| %-40s | %8s | %7.1f | %7.1f | %7.1f |\n", l, f, v[1], v[int((NR + 1) / 2)], v[NR] }'
}

echo
echo "keelctl trace over $ROWS events ($MESSAGES messages, 90 days), $RUNS runs each, wall ms"
echo
echo "| filter | events | min | median | max |"
echo "|---|---:|---:|---:|---:|"
time_filter "(keelctl status: the fixed cost)" status
time_filter "--message-id" --message-id "$MID"
time_filter "--queue-id" --queue-id "$QID"
time_filter "--sender" --sender "$SENDER"
time_filter "--rcpt" --rcpt "$ACCT"
time_filter "--account" --account "$ACCT"
time_filter "--ip (SMTP client)" --ip "$IP"
time_filter "--ip (IMAP client)" --ip "10.$(( ${ACCT//[!0-9]/} / 250 )).$(( ${ACCT//[!0-9]/} % 250 )).1"
time_filter "--since DAY --until DAY+1 (one day)" --since "$DAY" --until "$NEXT"
time_filter "--since 1h" --since 1h
time_filter "--account --since 30d" --account "$ACCT" --since 30d
time_filter "--sender --since DAY --until DAY+1" --sender "$SENDER" --since "$DAY" --until "$NEXT"
echo
echo "load average before: $LOAD0, after: $(cut -d' ' -f1 /proc/loadavg)"
keel_log_problems
