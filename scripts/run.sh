#!/bin/sh
# `make run`: a Keel server in the foreground for trying it out.
#   data dir ./var, domain DOMAIN (default example.test), postmaster@DOMAIN,
#   every service on 127.0.0.1 on unprivileged ports.
# Running it again reuses ./var.
set -eu

DOMAIN="${1:-example.test}"
TOP=$(cd "$(dirname "$0")/.." && pwd)
KEELD="$TOP/build/release/keeld"
KEELCTL="$TOP/build/release/keelctl"
VAR="$TOP/var"
CONF="$VAR/keel.conf"

mkdir -p "$VAR"
DATA_DIR="$VAR"
RUN_USER=""
if [ "$(id -u)" -eq 0 ]; then
	RUN_USER="keel"
	# The worker never runs as root: it must reach the data dir as `keel`.
	if ! runuser -u keel -- test -x "$TOP" 2>/dev/null; then
		DATA_DIR="/var/lib/keel-run"
		echo "note: user keel cannot reach $TOP; using data dir $DATA_DIR"
	fi
fi

if [ ! -f "$CONF" ]; then
	cat > "$CONF" <<CONF
# keel.conf written by \`make run\`.  Reference: docs/keel.conf.md
data_dir = $DATA_DIR
log = stderr
log_level = info
${RUN_USER:+user = $RUN_USER}
smtp.listen = 127.0.0.1:2525
submission.listen = 127.0.0.1:2587
submissions.listen = 127.0.0.1:2465
imap.listen = 127.0.0.1:2143
imaps.listen = 127.0.0.1:2993
pop3.listen = 127.0.0.1:2110
pop3s.listen = 127.0.0.1:2995
CONF
fi

SOCK=$(sed -n 's/^[[:space:]]*admin\.socket[[:space:]]*=[[:space:]]*//p' "$CONF")
DDIR=$(sed -n 's/^[[:space:]]*data_dir[[:space:]]*=[[:space:]]*//p' "$CONF")
case "$DDIR" in /*) ;; *) DDIR="$VAR/$DDIR" ;; esac
SOCK="${SOCK:-$DDIR/keel.sock}"
ctl() { "$KEELCTL" -s "$SOCK" "$@"; }

"$KEELD" -f -c "$CONF" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID; exit 0' INT TERM

i=0
until ctl status >/dev/null 2>&1; do
	if ! kill -0 $PID 2>/dev/null; then
		wait $PID || true
		echo "keeld did not start: see the messages above" >&2
		exit 1
	fi
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "keeld does not answer on $SOCK" >&2; kill $PID; exit 1; }
	sleep 0.1
done

ctl domain list --json | grep -q "\"name\": *\"$DOMAIN\"" || ctl domain add "$DOMAIN" >/dev/null
PASSWORD=""
if ! ctl user show "postmaster@$DOMAIN" >/dev/null 2>&1; then
	PASSWORD=$(ctl user add "postmaster@$DOMAIN" --name "Postmaster" | sed -n 's/.*password: *//p')
fi

cat <<INFO

Keel is running (pid $PID, data dir $DDIR).  Ctrl-C stops it.

  SMTP         127.0.0.1:2525   (STARTTLS)
  Submission   127.0.0.1:2587   (STARTTLS + AUTH)
  Submissions  127.0.0.1:2465   (TLS)
  IMAP         127.0.0.1:2143   (STARTTLS)
  IMAPS        127.0.0.1:2993   (TLS)
  POP3         127.0.0.1:2110   (STLS)
  POP3S        127.0.0.1:2995   (TLS)

INFO
if [ -n "$PASSWORD" ]; then
	echo "  Log in as postmaster@$DOMAIN with password: $PASSWORD"
	echo "  (shown once; change it with: $KEELCTL -s $SOCK user passwd postmaster@$DOMAIN)"
else
	echo "  postmaster@$DOMAIN exists (its password was shown on the first run;"
	echo "  set a new one with: $KEELCTL -s $SOCK user passwd postmaster@$DOMAIN)"
fi
echo "  Admin: $KEELCTL -s $SOCK status"
echo
wait $PID
