#!/bin/bash
# IMAP: keeld against Dovecot on the same machine, the same users and the
# same messages, driven by the same load generator (bench/imap_load.c).
#
#   bench/imap.sh          20 users x 2000 messages, 32 clients, 20 s per
#                          phase, a 20,000-message folder, 1000 idle
#                          connections
#   bench/imap.sh quick    5 users x 200 messages, 8 clients, 5 s, a
#                          2000-message folder, 100 idle
#
# For each server, in this order:
#   fill   every user's INBOX gets the same MSGS messages by APPEND (LITERAL+,
#          pipelined; the messages depend only on user and number)
#   login  CLIENTS clients loop connect, LOGIN, LOGOUT: logins/s
#   mixed  CLIENTS clients, each logged in with INBOX selected, issue a random
#          mix (weights MIX = fetch:store:append:search) of
#            UID FETCH n (FLAGS BODY.PEEK[]), UID STORE n +FLAGS/-FLAGS (\Flagged),
#            APPEND of a small message, UID SEARCH FROM "senderNN" / BODY "zqNNNN"
#          one command at a time: per-command rates and latency percentiles
#   select a user big1 gets BIG messages (fill, as above); SEL_CLIENTS clients
#          logged in as big1 SELECT its INBOX again and again: SELECTs/s
#   idle   the server is restarted (so that memory the earlier phases left in
#          its heap does not hide the sessions' own), WARM_N sessions open and
#          close (first-login costs), then IDLE_N sessions log in, select INBOX
#          and IDLE; the resident memory (VmRSS, and PSS) of the server's
#          processes is summed from /proc before and after, divided by
#          IDLE_N: every process of the server, and only the ones serving
#          sessions (keeld's worker; Dovecot's imap and imap-login processes)
#
# Both servers speak plaintext IMAP on 127.0.0.1 (no TLS on either; keeld with
# imap.allow_plaintext_auth = yes, Dovecot with ssl = no).  Passwords:
# keeld stores argon2id m=19456,t=2,p=1 (its only scheme); Dovecot gets
# {ARGON2ID} hashes with the same parameters, made by argon2(1), so a login
# costs both the same hashing (DOVECOT_HASH=doveadm uses `doveadm pw -s
# ARGON2ID` instead: m=65536,t=3, about 5 times the work).  Dovecot runs its
# Debian defaults otherwise: one imap process per session, maildir, no FTS
# plugin (SEARCH BODY reads the messages).
#
# Environment: KEEL_BIN=DIR uses keeld and keelctl from DIR instead of
# building build/release; KEEP=1 keeps the temp dir (logs, mail); KEEL_WORKERS=N
# sets keel.conf `workers`; USERS, MSGS, CLIENTS, SECS, IDLE_N, MIX override
# the sizes (and BIG, SEL_CLIENTS); ONLY=keeld or ONLY=dovecot runs one server.
#
# Everything listens on 127.0.0.1 on free ports; the system Dovecot (if any) is
# never touched: the Dovecot under test runs from a config in the temp dir
# with its own base_dir.  Every process started here is stopped by its PID.
set -euo pipefail

MODE="${1:-full}"
case "$MODE" in
full) d_users=20 d_msgs=2000 d_clients=32 d_secs=20 d_idle=1000 d_big=20000 ;;
quick) d_users=5 d_msgs=200 d_clients=8 d_secs=5 d_idle=100 d_big=2000 ;;
*) echo "usage: $0 [quick]" >&2; exit 2 ;;
esac
USERS=${USERS:-$d_users} MSGS=${MSGS:-$d_msgs} CLIENTS=${CLIENTS:-$d_clients}
SECS=${SECS:-$d_secs} IDLE_N=${IDLE_N:-$d_idle} MIX=${MIX:-40:30:20:10}
BIG=${BIG:-$d_big} SEL_CLIENTS=${SEL_CLIENTS:-4} WARM_N=${WARM_N:-16}
DOMAIN=bench.test
PASSWORD="imap-bench-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DOVECOT=/usr/sbin/dovecot
DOVEADM=/usr/bin/doveadm
ARGON2=/usr/bin/argon2
# keeld's parameters (src/auth/password.h)
ARGON2_M=19456 ARGON2_T=2 ARGON2_P=1

BENCH=imap
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

bench_install_dovecot() {
	local p missing=""
	for p in dovecot-imapd argon2; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		say "installing$missing (Dovecot does not start by itself here)"
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		# shellcheck disable=SC2086
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
	[ -x "$DOVECOT" ] || die "$DOVECOT missing (package dovecot-imapd)"
	[ -x "$ARGON2" ] || die "$ARGON2 missing (package argon2)"
}

bench_install_dovecot
bench_build
bench_tmp
LOAD="$TMP/imap_load"
cc -O2 -Wall -Wextra -o "$LOAD" "$TOP/bench/imap_load.c" || die "cannot build bench/imap_load.c"
bench_load_warning

# ------------------------------------------------------------ measuring

# tree_pids PID: PID and all its descendants
tree_pids() {
	local c
	echo "$1"
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
# mem_sum PID [COMM...]: "RSS_KB PSS_KB NPROC" summed over PID's tree, only
# over processes named COMM... if given
mem_sum() {
	local root=$1 pid comm rss pss tr=0 tp=0 n=0; shift
	for pid in $(tree_pids "$root"); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx -- "$comm"; then continue; fi
		rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
		tr=$((tr + ${rss:-0})) tp=$((tp + ${pss:-0})) n=$((n + 1))
	done
	echo "$tr $tp $n"
}
# result FILE OP KEY: a value from imap_load's "RESULT op=OP ... KEY=V" lines
result() { sed -n "s/^RESULT op=$2 .*\b$3=\([^ ]*\).*/\1/p" "$1" | head -n1; }

declare -A R
# run_phases NAME PORT PID: fill, login, mixed and select against one
# server; figures into R[NAME.*].
run_phases() {
	local name=$1 port=$2 pid=$3
	local out="$TMP/$name" c0 c1 op
	local common=(-p "$port" -n "$USERS" -w "$PASSWORD" -u "u%d@$DOMAIN")

	say "$name: fill: $USERS users x $MSGS messages by APPEND ..."
	"$LOAD" fill "${common[@]}" -M "$MSGS" >"$out.fill" 2>"$out.fill.err" ||
		{ cat "$out.fill.err" >&2; die "$name: fill failed"; }
	R[$name.fill]=$(result "$out.fill" append rate)

	say "$name: login: $CLIENTS clients, ${SECS}s ..."
	c0=$(tree_ticks "$pid")
	"$LOAD" login "${common[@]}" -c "$CLIENTS" -t "$SECS" >"$out.login" 2>"$out.login.err" ||
		{ cat "$out.login.err" >&2; die "$name: login failed"; }
	c1=$(tree_ticks "$pid")
	R[$name.login]=$(result "$out.login" login rate)
	R[$name.login_p50]=$(result "$out.login" login p50)
	R[$name.login_p99]=$(result "$out.login" login p99)
	R[$name.login_cpu]=$(calc %.1f "($c1 - $c0) / $HZ")
	R[$name.login_err]=$(result "$out.login" login errors)
	cat "$out.login.err" >&2

	say "$name: mixed: $CLIENTS clients, ${SECS}s, fetch:store:append:search = $MIX ..."
	c0=$(tree_ticks "$pid")
	"$LOAD" mixed "${common[@]}" -c "$CLIENTS" -t "$SECS" -x "$MIX" >"$out.mixed" 2>"$out.mixed.err" ||
		{ cat "$out.mixed.err" >&2; die "$name: mixed failed"; }
	c1=$(tree_ticks "$pid")
	cat "$out.mixed.err" >&2
	R[$name.mixed_cpu]=$(calc %.1f "($c1 - $c0) / $HZ")
	R[$name.exists]=$(result "$out.mixed" total exists_min)
	[ "${R[$name.exists]}" -ge "$MSGS" ] ||
		die "$name: an INBOX holds ${R[$name.exists]} messages at SELECT, expected at least $MSGS"
	R[$name.dropped]=$(result "$out.mixed" total dropped)
	for op in fetch store append search; do
		R[$name.$op]=$(result "$out.mixed" "$op" rate)
		R[$name.${op}_p50]=$(result "$out.mixed" "$op" p50)
		R[$name.${op}_p99]=$(result "$out.mixed" "$op" p99)
		R[$name.${op}_err]=$(result "$out.mixed" "$op" errors)
	done

	say "$name: select: big1 gets $BIG messages, then $SEL_CLIENTS clients SELECT its INBOX, ${SECS}s ..."
	"$LOAD" fill -p "$port" -n 1 -w "$PASSWORD" -u "big%d@$DOMAIN" -M "$BIG" >"$out.bigfill" 2>"$out.bigfill.err" ||
		{ cat "$out.bigfill.err" >&2; die "$name: fill of big1 failed"; }
	"$LOAD" select -p "$port" -n 1 -w "$PASSWORD" -u "big%d@$DOMAIN" -c "$SEL_CLIENTS" -t "$SECS" \
		>"$out.select" 2>"$out.select.err" ||
		{ cat "$out.select.err" >&2; die "$name: select failed"; }
	cat "$out.select.err" >&2
	[ "$(result "$out.select" total exists_min)" -eq "$BIG" ] ||
		die "$name: big1's INBOX holds $(result "$out.select" total exists_min) messages at SELECT, expected $BIG"
	R[$name.select]=$(result "$out.select" select rate)
	R[$name.select_p50]=$(result "$out.select" select p50)
	R[$name.select_p99]=$(result "$out.select" select p99)
	R[$name.select_err]=$(result "$out.select" select errors)
}

# run_idle NAME PORT PID SELPID [COMM...]: the idle phase against a freshly
# started server.  The memory is summed over PID's whole tree, and over
# SELPID's tree restricted to the processes named COMM... (the ones serving
# sessions).
run_idle() {
	local name=$1 port=$2 pid=$3 selpid=$4; shift 4
	local out="$TMP/$name" lpid i m0 m1 w0 w1
	local common=(-p "$port" -n "$USERS" -w "$PASSWORD" -u "u%d@$DOMAIN")

	say "$name: idle: $WARM_N sessions to warm up, then $IDLE_N sessions in IDLE ..."
	"$LOAD" idle "${common[@]}" -c "$WARM_N" -P 16 -t 1 >"$out.warm" 2>"$out.warm.err" ||
		{ cat "$out.warm.err" >&2; die "$name: warm-up sessions failed"; }
	sleep 2
	read -r w0 m0 _ < <(mem_sum "$pid")
	read -r "R[$name.rss0_sel]" "R[$name.pss0_sel]" "R[$name.n0_sel]" < <(mem_sum "$selpid" "$@")
	"$LOAD" idle "${common[@]}" -c "$IDLE_N" -P 16 -t 600 >"$out.idle" 2>"$out.idle.err" &
	lpid=$!
	BENCH_PIDS+=("$lpid")
	for i in $(seq 6000); do
		grep -q '^READY' "$out.idle" 2>/dev/null && break
		kill -0 "$lpid" 2>/dev/null || { cat "$out.idle.err" >&2; die "$name: idle sessions failed"; }
		[ "$i" -lt 6000 ] || die "$name: $IDLE_N idle sessions not open after 600 s"
		sleep 0.1
	done
	sleep 2
	read -r w1 m1 _ < <(mem_sum "$pid")
	read -r "R[$name.rss1_sel]" "R[$name.pss1_sel]" "R[$name.n1_sel]" < <(mem_sum "$selpid" "$@")
	kill -TERM "$lpid"
	wait "$lpid" 2>/dev/null || true
	cat "$out.idle.err" >&2
	R[$name.rss_tree]=$(calc %.1f "($w1 - $w0) / $IDLE_N")
	R[$name.pss_tree]=$(calc %.1f "($m1 - $m0) / $IDLE_N")
	R[$name.rss_sel]=$(calc %.1f "(${R[$name.rss1_sel]} - ${R[$name.rss0_sel]}) / $IDLE_N")
	R[$name.pss_sel]=$(calc %.1f "(${R[$name.pss1_sel]} - ${R[$name.pss0_sel]}) / $IDLE_N")
	R[$name.rss_before]=$w0 R[$name.rss_after]=$w1
	say "$name: RSS of all processes ${w0} -> ${w1} KiB, PSS ${m0} -> ${m1} KiB"
}

SERVERS=()
[ "${ONLY:-}" = dovecot ] || SERVERS+=(keeld)
[ "${ONLY:-}" = keeld ] || SERVERS+=(dovecot)

# ------------------------------------------------------------------ keeld
if [[ " ${SERVERS[*]} " == *" keeld "* ]]; then
	IMAP_PORT=$(free_port)
	keel_start "imap.listen = 127.0.0.1:$IMAP_PORT"
	ctl config set imap.allow_plaintext_auth yes >/dev/null
	ctl config set imap.max_connections_per_ip 0 >/dev/null # all come from 127.0.0.1
	ctl domain add "$DOMAIN" >/dev/null
	for u in $(seq -f "u%g" "$USERS") big1; do
		printf '%s\n' "$PASSWORD" | ctl user add "$u@$DOMAIN" --password-stdin >/dev/null
	done
	run_phases keeld "$IMAP_PORT" "$KEEL_PID"
	keel_stop
	keel_start "imap.listen = 127.0.0.1:$IMAP_PORT" # settings and users are in the store
	KEEL_WORKER=$(cat /proc/"$KEEL_PID"/task/*/children 2>/dev/null | awk '{ print $1 }')
	[ -n "$KEEL_WORKER" ] || die "keeld has no worker process"
	run_idle keeld "$IMAP_PORT" "$KEEL_PID" "$KEEL_WORKER"
	keel_stop
	keel_log_problems
fi

# ---------------------------------------------------------------- dovecot
DV_PID=""
dv_start() {
	"$DOVECOT" -F -c "$DV/dovecot.conf" 2>>"$DV/dovecot.log" &
	DV_PID=$!
	BENCH_PIDS+=("$DV_PID")
	for i in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$DV_PORT") 2>/dev/null && break
		kill -0 "$DV_PID" 2>/dev/null || { cat "$DV/dovecot.log" >&2; die "dovecot exited"; }
		[ "$i" -lt 100 ] || die "dovecot does not listen on 127.0.0.1:$DV_PORT"
		sleep 0.1
	done
}
dv_stop() {
	if [ -n "$DV_PID" ] && kill -0 "$DV_PID" 2>/dev/null; then
		kill -TERM "$DV_PID"; wait "$DV_PID" 2>/dev/null || true
	fi
	DV_PID=""
}
# dv_hash: the {ARGON2ID} hash of $PASSWORD for the passwd-file
dv_hash() {
	if [ "${DOVECOT_HASH:-}" = doveadm ]; then
		"$DOVEADM" pw -s ARGON2ID -p "$PASSWORD"
	else
		printf '%s' "$PASSWORD" |
			"$ARGON2" "$(head -c 12 /dev/urandom | base64)" -id -t "$ARGON2_T" -k "$ARGON2_M" -p "$ARGON2_P" -e |
			sed 's/^/{ARGON2ID}/'
	fi
}
if [[ " ${SERVERS[*]} " == *" dovecot "* ]]; then
	DV="$TMP/dovecot"
	DV_PORT=$(free_port)
	mkdir -p "$DV/run" "$DV/state" "$DV/mail"
	chown 65534:65534 "$DV/mail"
	for u in $(seq -f "u%g" "$USERS") big1; do
		echo "$u@$DOMAIN:$(dv_hash):65534:65534::$DV/mail/$u::"
	done >"$DV/passwd"
	DV_SCHEME=$(sed -n '1s/^[^:]*:\({ARGON2ID}\$argon2id\$v=19\$[^$]*\)\$.*/\1/p' "$DV/passwd")
	"$DOVEADM" pw -t "$(sed -n '1s/^[^:]*:\([^:]*\):.*/\1/p' "$DV/passwd")" -p "$PASSWORD" >/dev/null ||
		die "doveadm does not verify the hash made for Dovecot"
	cat >"$DV/dovecot.conf" <<EOF
# written by bench/$BENCH: a private Dovecot instance
base_dir = $DV/run
state_dir = $DV/state
instance_name = dovecot-bench-$$
log_path = $DV/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
first_valid_uid = 1
mail_max_userip_connections = 100000
default_client_limit = $((IDLE_N + 1000))
passdb {
  driver = passwd-file
  args = $DV/passwd
}
userdb {
  driver = passwd-file
  args = $DV/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DV_PORT
  }
  inet_listener imaps {
    port = 0
  }
  process_limit = $((IDLE_N + 1000))
}
service imap {
  process_limit = $((IDLE_N + 1000))
}
service auth {
  client_limit = $((IDLE_N + 1300))
}
service anvil {
  client_limit = $((IDLE_N + 1300))
}
EOF
	dv_start
	run_phases dovecot "$DV_PORT" "$DV_PID"
	dv_stop
	dv_start
	run_idle dovecot "$DV_PORT" "$DV_PID" "$DV_PID" imap imap-login
	dv_stop
	if grep -E -i 'error|fatal|panic|warning' "$DV/dovecot.log" >/dev/null 2>&1; then
		say "dovecot log problems:"; grep -E -i 'error|fatal|panic|warning' "$DV/dovecot.log" | tail -n 10 >&2
	fi
fi

# ------------------------------------------------------------------ table
ratio() {
	if [ -n "${R[keeld.$1]:-}" ] && [ -n "${R[dovecot.$1]:-}" ] && awk "BEGIN { exit !(${R[dovecot.$1]} > 0) }"; then
		calc %.2f "${R[keeld.$1]} / ${R[dovecot.$1]}"
	else
		echo "-"
	fi
}
row() { printf '%-34s %12s %12s %8s\n' "$1" "${R[keeld.$2]:--}" "${R[dovecot.$2]:--}" "$(ratio "$2")"; }
echo
echo "IMAP, $(nproc) cores, load average before $LOAD0, after $(cut -d' ' -f1 /proc/loadavg) ($MODE)"
echo "$USERS users x $MSGS messages; $CLIENTS clients, ${SECS}s per phase; $IDLE_N idle sessions; mix fetch:store:append:search = $MIX"
echo "SELECT: $SEL_CLIENTS clients re-selecting one $BIG-message INBOX; idle memory on a restarted server after $WARM_N warm-up sessions"
echo "plaintext IMAP on 127.0.0.1 for both (LOGIN, no TLS); passwords: keeld argon2id m=$ARGON2_M,t=$ARGON2_T,p=$ARGON2_P, dovecot ${DV_SCHEME:-?}"
echo "Dovecot $("$DOVECOT" --version | cut -d' ' -f1), Debian defaults: maildir, one imap process per session, no FTS plugin"
printf '%-34s %12s %12s %8s\n' "" "keeld" "dovecot" "ratio"
row "logins/s" login
row "FETCH/s (mixed)" fetch
row "STORE/s (mixed)" store
row "APPEND/s (mixed)" append
row "SEARCH/s (mixed)" search
row "SELECT/s ($BIG messages)" select
row "KiB RSS per idle session (all)" rss_tree
row "KiB PSS per idle session (all)" pss_tree
row "KiB RSS per idle session (serving)" rss_sel
row "KiB PSS per idle session (serving)" pss_sel
echo
echo "latency p50/p99 ms: login ${R[keeld.login_p50]:--}/${R[keeld.login_p99]:--} vs ${R[dovecot.login_p50]:--}/${R[dovecot.login_p99]:--};" \
	"fetch ${R[keeld.fetch_p50]:--}/${R[keeld.fetch_p99]:--} vs ${R[dovecot.fetch_p50]:--}/${R[dovecot.fetch_p99]:--};" \
	"store ${R[keeld.store_p50]:--}/${R[keeld.store_p99]:--} vs ${R[dovecot.store_p50]:--}/${R[dovecot.store_p99]:--};" \
	"append ${R[keeld.append_p50]:--}/${R[keeld.append_p99]:--} vs ${R[dovecot.append_p50]:--}/${R[dovecot.append_p99]:--};" \
	"search ${R[keeld.search_p50]:--}/${R[keeld.search_p99]:--} vs ${R[dovecot.search_p50]:--}/${R[dovecot.search_p99]:--};" \
	"select ${R[keeld.select_p50]:--}/${R[keeld.select_p99]:--} vs ${R[dovecot.select_p50]:--}/${R[dovecot.select_p99]:--}"
echo "server CPU seconds: login phase keeld ${R[keeld.login_cpu]:--} / dovecot ${R[dovecot.login_cpu]:--}; mixed phase keeld ${R[keeld.mixed_cpu]:--} / dovecot ${R[dovecot.mixed_cpu]:--}"
echo "fill (APPEND, LITERAL+, $USERS users at once) messages/s: keeld ${R[keeld.fill]:--}, dovecot ${R[dovecot.fill]:--}"
echo "idle memory, every process of the server: keeld ${R[keeld.rss_before]:--} -> ${R[keeld.rss_after]:--} KiB RSS;" \
	"dovecot ${R[dovecot.rss_before]:--} -> ${R[dovecot.rss_after]:--} KiB RSS"
echo "serving processes: keeld worker ${R[keeld.rss0_sel]:--} -> ${R[keeld.rss1_sel]:--} KiB RSS;" \
	"dovecot imap + imap-login ${R[dovecot.n0_sel]:--} -> ${R[dovecot.n1_sel]:--} processes, ${R[dovecot.rss0_sel]:--} -> ${R[dovecot.rss1_sel]:--} KiB RSS"
echo "errors: login ${R[keeld.login_err]:--}/${R[dovecot.login_err]:--}, fetch ${R[keeld.fetch_err]:--}/${R[dovecot.fetch_err]:--}," \
	"store ${R[keeld.store_err]:--}/${R[dovecot.store_err]:--}, append ${R[keeld.append_err]:--}/${R[dovecot.append_err]:--}," \
	"search ${R[keeld.search_err]:--}/${R[dovecot.search_err]:--}, select ${R[keeld.select_err]:--}/${R[dovecot.select_err]:--}; connections lost ${R[keeld.dropped]:--}/${R[dovecot.dropped]:--}"
