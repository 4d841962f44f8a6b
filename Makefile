# Duet — one plain GNU Makefile.  `make` builds build/bin/{srmd,presenced,srmctl}.
# SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer (what the tests run).
# Targets: all, check, soak, demo, bench, bench-failover, fuzz, lint, install, uninstall, clean.

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT = -O1 -g
else
BUILD ?= build
SANFLAGS =
OPT = -O2 -g
endif

CC ?= cc
PKGS = libevent libevent_openssl expat openssl libpq libcpg libquorum libvotequorum
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PG_INC := $(shell pg_config --includedir 2>/dev/null)
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
       -Wno-unused-parameter -Wformat=2 -Wvla
CFLAGS ?= $(OPT)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(SANFLAGS) -I. $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS)
LIBS = $(PKG_LIBS) -lm

LIB_SRC := $(wildcard lib/*.c)
ENGINE_SRC := $(filter-out engine/main.c,$(wildcard engine/*.c))
HA_SRC := $(filter-out ha/srmd.c,$(wildcard ha/*.c heartbeat/*.c replication/*.c))
SRMCTL_SRC := $(wildcard ha/srmctl/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_A := $(BUILD)/libduet.a
ENGINE_A := $(BUILD)/libengine.a
HA_A := $(BUILD)/libha.a
LOADGEN_SRC := $(wildcard contrib/loadgen/*.c)
BINS := $(BUILD)/bin/srmd $(BUILD)/bin/presenced $(BUILD)/bin/srmctl \
	$(if $(LOADGEN_SRC),$(BUILD)/bin/duet-loadgen)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all check soak unit fuzz fuzz-run demo bench bench-failover lint clean deps install uninstall
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_A): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(ENGINE_A): $(call obj,$(ENGINE_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(HA_A): $(call obj,$(HA_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/presenced: $(call obj,engine/main.c) $(ENGINE_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/bin/srmd: $(call obj,ha/srmd.c) $(HA_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/bin/srmctl: $(call obj,$(SRMCTL_SRC) ha/login_profiles.c) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(BUILD)/bin/duet-loadgen: $(call obj,$(LOADGEN_SRC)) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The load generator's unit test links the parts of it that it tests.
$(BUILD)/tests/test_loadgen: $(call obj,tests/unit/test_loadgen.c contrib/loadgen/fastcert.c) \
		$(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs cmocka)
$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(ENGINE_A) $(HA_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs cmocka)

# The test suite: deps, a sanitizer build, unit tests, fuzz regression over the seed corpora,
# then integration and interop tests against real PostgreSQL and real processes.
check:
	contrib/install-deps test
	$(MAKE) -j2 SAN=1 all units
	$(MAKE) -j2 fuzz-build
	tests/run build/san

units: $(UNIT_BINS)

# The fault scenarios of tests/fault/ (as root: network namespaces), long: each one
# DUET_FAULT_ROUNDS times (default 3) with 60 s of random loss (docs/testing.md).
soak:
	contrib/install-deps test
	$(MAKE) -j2 SAN=1 all
	DUET_BUILD=$(CURDIR)/build/san DUET_FAULT_MODE=soak tests/fault/test_fault_scenarios.py

demo:
	contrib/install-deps test
	$(MAKE) all
	contrib/demo

bench:
	contrib/install-deps bench
	$(MAKE) all
	contrib/bench/run
	contrib/bench/replication

# Clients through a failover: 15,000 on a local pair, four scenarios (docs/benchmarks.md).
# BENCH_FAILOVER_ARGS=--quick for 1,000 clients.
bench-failover:
	contrib/install-deps bench
	$(MAKE) all
	contrib/bench/failover $(BENCH_FAILOVER_ARGS)

# libFuzzer targets (clang). fuzz-build only builds; `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BUILD := build/fuzz
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -I. $(PKG_CFLAGS) -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -MMD -MP
FUZZ_SECONDS ?= 60
# The engine and lib are compiled once for every target (instrumented, no main).
FUZZ_A := $(FUZZ_BUILD)/libfuzzed.a
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_A): $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(ENGINE_SRC) $(LIB_SRC))
	rm -f $@ && ar rcs $@ $^
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_A)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_A) $(LIBS)
fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  echo "fuzz $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; done

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --suppress=missingIncludeSystem -I. lib engine ha heartbeat replication
	shellcheck -x contrib/install-deps contrib/local-group contrib/demo contrib/bench/run \
	  contrib/bench/replication contrib/bench/login-cost \
	  tests/run tests/lib/pg.sh .ci/run tests/integration/*.sh

# make install [PREFIX=/usr/local] [DESTDIR=] (docs/operator-guide.md "Install"): the three
# programs in sbin (srmd runs the presenced next to it), man pages, the systemd unit and
# sysusers file, the example config and the operator docs.  BUILD picks the binaries.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/duet
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL ?= install
INSTALL_DOCS := contrib/duet.conf.example docs/operator-guide.md docs/parameters.md \
	docs/srmctl-protocol.md docs/state-machine.md

install: $(BUILD)/bin/srmd $(BUILD)/bin/presenced $(BUILD)/bin/srmctl
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	$(INSTALL) -m 755 $^ $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 644 docs/srmctl.8 docs/srmd.8 $(DESTDIR)$(MANDIR)/man8/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	  contrib/systemd/duet-srmd.service.in >$(DESTDIR)$(SYSTEMDUNITDIR)/duet-srmd.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/duet-srmd.service
	$(INSTALL) -m 644 contrib/systemd/duet.sysusers $(DESTDIR)$(SYSUSERSDIR)/duet.conf
	$(INSTALL) -m 644 $(INSTALL_DOCS) $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/srmd $(DESTDIR)$(SBINDIR)/presenced $(DESTDIR)$(SBINDIR)/srmctl \
	  $(DESTDIR)$(MANDIR)/man8/srmctl.8 $(DESTDIR)$(MANDIR)/man8/srmd.8 \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/duet-srmd.service $(DESTDIR)$(SYSUSERSDIR)/duet.conf \
	  $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INSTALL_DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
