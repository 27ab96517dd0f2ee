# Keel — build, run and test.  See README.md.
#
#   make            build keeld and keelctl (build/release)
#   make run        install build deps, build, start keeld in the foreground on ./var
#   make test       install test deps, build with ASan+UBSan, run unit and end-to-end tests
#   make soak       the long crash soak (SIGKILL under load) against a release build
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX  ?= /usr/local
DESTDIR ?=
MODE    ?= release
DOMAIN  ?= example.test

PKGS    := libevent libevent_openssl libevent_pthreads openssl sqlite3 jansson libargon2 \
           libunbound libidn2
CC      ?= cc
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Wformat=2
CFLAGS_BASE := -std=gnu11 -g $(WARN) -Isrc -D_GNU_SOURCE \
           -DKEEL_VERSION='"$(shell cat VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

ifeq ($(MODE),fuzz)
  CC := clang
  CFLAGS_MODE := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
  LDFLAGS_MODE := -fsanitize=address,undefined
else ifeq ($(MODE),asan)
  CFLAGS_MODE := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS_MODE := -fsanitize=address,undefined
else
  CFLAGS_MODE := -O2 -D_FORTIFY_SOURCE=2 -fstack-protector-strong
  LDFLAGS_MODE :=
endif

B ?= build/$(MODE)
# `make V=1` shows whole command lines.
Q := $(if $(V),,@)

# Every module's .c except programs' mains and unit tests goes into one static library.
MODULES ?= lib mail proto store directory auth access settings trace pipeline smtp pop3 queue imap admin keeld
LIB_SRC := $(filter-out %/main.c $(wildcard src/*/test_*.c),$(wildcard $(addprefix src/,$(addsuffix /*.c,$(MODULES)))))
LIB_SRC += $(if $(filter store,$(MODULES)),$(filter-out %/test_%.c,$(wildcard src/store/sqlite/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CTL_SRC := $(wildcard src/keelctl/*.c)
CTL_OBJ := $(CTL_SRC:%.c=$(B)/%.o)
TEST_SRC := $(wildcard $(addprefix src/,$(addsuffix /test_*.c,$(MODULES))))
TEST_BIN := $(TEST_SRC:src/%.c=$(B)/tests/%)

FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(B)/fuzz/%)
FUZZ_SECONDS ?= 60

.PHONY: all run test unit e2e deps deps-test install clean format fuzz fuzz-bins soak
all: $(B)/keeld $(B)/keelctl

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_BASE) $(CFLAGS_MODE) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libkeel.a: $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(B)/keeld: $(B)/src/keeld/main.o $(B)/libkeel.a
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_MODE) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/keelctl: $(CTL_OBJ) $(B)/libkeel.a
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_MODE) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: $(B)/src/%.o $(B)/libkeel.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_MODE) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/fuzz/%: $(B)/fuzz/%.o $(B)/libkeel.a
	@mkdir -p $(dir $@)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

fuzz-bins: $(FUZZ_BIN)

# Every fuzz target for FUZZ_SECONDS each, starting from its corpus in
# fuzz/corpus/NAME (copied: new inputs stay out of the tree).
# B=DIR on the command line builds and runs them there instead.
FUZZ_B := $(if $(filter command line,$(origin B)),$(B),build/fuzz)
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory MODE=fuzz B=$(FUZZ_B) fuzz-bins
	@scripts/fuzz.sh $(FUZZ_B) $(FUZZ_SECONDS)

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory MODE=release all
	@scripts/run.sh $(DOMAIN)

# Unit tests and end-to-end tests, both against the sanitizer build.
test: deps-test
	@$(MAKE) --no-print-directory MODE=release all
	@$(MAKE) --no-print-directory MODE=asan all unit-bins
	@$(MAKE) --no-print-directory MODE=fuzz B=build/fuzz fuzz-bins
	@scripts/test.sh build/asan
# scripts/test.sh also runs each fuzz target for FUZZ_SMOKE_SECONDS from its corpus.
FUZZ_SMOKE_SECONDS ?= 10
test: export KEEL_FUZZ_BUILD = build/fuzz
test: export KEEL_FUZZ_SECONDS = $(FUZZ_SMOKE_SECONDS)

unit-bins: $(TEST_BIN)

# The long crash soak (tests/test_crash.py, docs/reliability.md): SOAK_ROUNDS
# SIGKILLs of the worker, then as many of the whole keeld, against a release
# build, with SOAK_MESSAGES messages acknowledged over the kills; prints its figures.
# B=DIR on the command line builds and runs it there instead of build/release.
SOAK_ROUNDS ?= 200
SOAK_MESSAGES ?= 10000
SOAK_SENDERS ?= 8
SOAK_B := $(if $(filter command line,$(origin B)),$(B),build/release)
soak: deps-test
	@$(MAKE) --no-print-directory MODE=release B=$(SOAK_B) all
	KEEL_BUILD=$(abspath $(SOAK_B)) KEEL_REQUIRE_PEERS=1 KEEL_SOAK_ROUNDS=$(SOAK_ROUNDS) \
	  KEEL_SOAK_MESSAGES=$(SOAK_MESSAGES) KEEL_SOAK_SENDERS=$(SOAK_SENDERS) \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/test_crash.py -k sigkill

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/doc/keel $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(B)/keeld $(DESTDIR)$(PREFIX)/sbin/keeld
	install -m 0755 $(B)/keelctl $(DESTDIR)$(PREFIX)/bin/keelctl
	install -m 0644 docs/man/keeld.8 docs/man/keelctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 docs/man/keel.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 etc/keel.conf.example $(DESTDIR)$(PREFIX)/share/doc/keel/keel.conf.example
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' etc/keel.service.in > $(DESTDIR)$(PREFIX)/lib/systemd/system/keel.service
	install -d $(DESTDIR)/etc/keel
	test -e $(DESTDIR)/etc/keel/keel.conf || install -m 0644 etc/keel.conf.example $(DESTDIR)/etc/keel/keel.conf
	@# The worker's user, on a real install only.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd keel >/dev/null; then \
	  useradd --system --home-dir /var/lib/keel --no-create-home --shell /usr/sbin/nologin keel; fi

format:
	clang-format -i $(shell find src -name '*.[ch]')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
