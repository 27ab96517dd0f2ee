#!/bin/sh
# Installs the Debian packages Keel needs, and the `keel` system user the
# worker runs as when keeld starts as root.  Idempotent: installs only what
# is missing.  Uses sudo when not root.
#   scripts/deps.sh build   what `make` and `make run` need
#   scripts/deps.sh test    that plus what `make test` needs (clang: the fuzz smoke run)
#   scripts/deps.sh fuzz    that plus clang for `make fuzz`
set -eu

BUILD_PKGS="build-essential pkg-config libevent-dev libssl-dev libsqlite3-dev libjansson-dev libargon2-dev libunbound-dev libidn2-dev openssl"
TEST_PKGS="python3 python3-pytest curl swaks libnet-ssleay-perl libio-socket-ssl-perl sqlite3 procps util-linux fetchmail dnsmasq python3-aiosmtpd clang"
FUZZ_PKGS="clang"

case "${1:-build}" in
build) pkgs="$BUILD_PKGS" ;;
test) pkgs="$BUILD_PKGS $TEST_PKGS" ;;
fuzz) pkgs="$BUILD_PKGS $FUZZ_PKGS" ;;
*) echo "usage: $0 build|test|fuzz" >&2; exit 2 ;;
esac

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	SUDO=""
fi

missing=""
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
		echo "deps: missing Debian packages:$missing" >&2
		echo "deps: run as root or install sudo" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The worker's user (keel.conf `user`, default keel), needed when keeld is
# started as root.
if ! getent passwd keel >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
		$SUDO useradd --system --home-dir /var/lib/keel --no-create-home \
			--shell /usr/sbin/nologin keel
	fi
fi
