# moe - build, test, demo.
#   make            build/moe and build/libmoe.a (installs Debian packages if missing)
#   make demo       the main job: train a small MoE on five text domains, show its
#                   routing (tools/demo.sh, 3-4 minutes); make demo-ci: seconds
#   make test       unit, conformance and CLI tests, then the unit tests again
#                   on the AVX2 kernels (on AVX-512 CPUs) and under ASan+UBSan;
#                   ends with "N passed, N failed"
#   make fuzz       a libFuzzer target per parser, each for FUZZ_SECONDS (30)
#   BUILD=dir       build somewhere else (default build)

BUILD ?= build
CC ?= cc
DEB_PKGS := libcjson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
               -Iinclude -Isrc -pthread -g
OPT ?= -O2
CFLAGS := $(CFLAGS_BASE) $(OPT)
LDLIBS := -lcjson -lpcre2-8 -lutf8proc -lm -pthread

# Files ending in _avx512.c / _avx2.c are compiled for that ISA; the code in
# them runs only when the CPU has it (checked at run time in kernels.c).
FLAGS_AVX512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mf16c -mfma -mavx2
FLAGS_AVX2 := -mavx2 -mfma -mf16c

LIB_SRC := $(sort $(wildcard src/*/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
# serve/: the HTTP server of `moe serve`, linked into the moe binary only
# (never libmoe). Its pure parts (request parsing, chat prompts, replies,
# text, metrics)
# are also linked into the unit tests.
SERVE_SRC := $(sort $(wildcard serve/*.c))
SERVE_PURE_SRC := serve/api.c serve/chat.c serve/reply.c serve/text.c serve/metrics.c

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
SERVE_OBJ := $(SERVE_SRC:%.c=$(BUILD)/%.o)
SERVE_PURE_OBJ := $(SERVE_PURE_SRC:%.c=$(BUILD)/%.o)

ASAN := $(BUILD)/asan
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_LIB_OBJ := $(LIB_SRC:%.c=$(ASAN)/%.o)
ASAN_TEST_OBJ := $(TEST_SRC:%.c=$(ASAN)/%.o)
ASAN_SERVE_PURE_OBJ := $(SERVE_PURE_SRC:%.c=$(ASAN)/%.o)
ASAN_SERVE_OBJ := $(SERVE_SRC:%.c=$(ASAN)/%.o)
ASAN_CLI_OBJ := $(CLI_SRC:%.c=$(ASAN)/%.o)

.PHONY: all deps test test-fast clean demo demo-ci bench-olmoe bench-kernels bench-quant bench-route bench-expert-rows bench-attn-block bench-olmoe-q
all: $(BUILD)/moe $(BUILD)/libmoe.a

# The Debian packages whose headers the sources include. Every compile rule
# names `deps` as an order-only prerequisite (| deps), so with -j the install
# finishes before the first compiler starts, and a present package costs
# only a dpkg query (it never makes anything out of date).

deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

$(BUILD)/libmoe.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/moe: $(CLI_OBJ) $(SERVE_OBJ) $(BUILD)/serve/page_html.o $(BUILD)/libmoe.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(SERVE_OBJ) $(BUILD)/serve/page_html.o $(BUILD)/libmoe.a $(LDLIBS) -lmicrohttpd

# The page of GET / (serve/page.html) as a C string in the binary: each line
# a string literal, with backslashes, quotes and '?' (trigraphs) escaped.
$(BUILD)/serve/page_html.c: serve/page.html
	@mkdir -p $(@D)
	{ echo '/* generated from serve/page.html by the Makefile */'; echo '#include <stddef.h>'; \
	  echo 'extern const char serve_page_html[];'; echo 'extern const size_t serve_page_html_len;'; \
	  echo 'const char serve_page_html[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; echo 'const size_t serve_page_html_len = sizeof serve_page_html - 1;'; } > $@.tmp && mv $@.tmp $@
$(BUILD)/serve/page_html.o: $(BUILD)/serve/page_html.c
	$(CC) $(CLI_CFLAGS) -c -o $@ $<

$(BUILD)/moe_tests: $(TEST_OBJ) $(SERVE_PURE_OBJ) $(BUILD)/libmoe.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(SERVE_PURE_OBJ) $(BUILD)/libmoe.a $(LDLIBS)

$(ASAN)/moe_tests: $(ASAN_TEST_OBJ) $(ASAN_SERVE_PURE_OBJ) $(ASAN_LIB_OBJ)
	$(CC) $(CFLAGS_BASE) -O1 $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%_avx512.o: %_avx512.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(FLAGS_AVX512) -MMD -MP -c -o $@ $<
$(BUILD)/%_avx2.o: %_avx2.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(FLAGS_AVX2) -MMD -MP -c -o $@ $<
$(BUILD)/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<
# The CLI sees only the public headers: its objects compile without -Isrc,
# so an include of a library-internal header fails the build.
CLI_CFLAGS = $(filter-out -Isrc,$(CFLAGS))
$(BUILD)/cli/%.o: cli/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(CLI_CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/serve/%.o: serve/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(CLI_CFLAGS) -MMD -MP -c -o $@ $<
$(ASAN)/serve/%.o: serve/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(filter-out -Isrc,$(CFLAGS_BASE)) -O1 $(ASAN_FLAGS) -MMD -MP -c -o $@ $<
$(ASAN)/cli/%.o: cli/%.c | deps
	@mkdir -p $(@D)
	$(CC) $(filter-out -Isrc,$(CFLAGS_BASE)) -O1 $(ASAN_FLAGS) -MMD -MP -c -o $@ $<

# moe itself under ASan+UBSan, for the hostile-traffic suite against the
# server (tests/serve/flood.sh, run by make test)
$(ASAN)/moe: $(ASAN_CLI_OBJ) $(ASAN_SERVE_OBJ) $(BUILD)/serve/page_html.c $(ASAN_LIB_OBJ)
	$(CC) $(CFLAGS_BASE) -O1 $(ASAN_FLAGS) -o $@ $(ASAN_CLI_OBJ) $(ASAN_SERVE_OBJ) $(BUILD)/serve/page_html.c \
	  $(ASAN_LIB_OBJ) $(LDLIBS) -lmicrohttpd

$(ASAN)/%_avx512.o: %_avx512.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) -O1 $(ASAN_FLAGS) $(FLAGS_AVX512) -MMD -MP -c -o $@ $<
$(ASAN)/%_avx2.o: %_avx2.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) -O1 $(ASAN_FLAGS) $(FLAGS_AVX2) -MMD -MP -c -o $@ $<
$(ASAN)/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) -O1 $(ASAN_FLAGS) -MMD -MP -c -o $@ $<

# The test suites: unit+conformance (optimized), the same under sanitizers,
# and the CLI (shell). tests/run.sh adds up their counts.
test: $(BUILD)/moe $(BUILD)/moe_tests $(ASAN)/moe_tests $(ASAN)/moe
	@BUILD=$(BUILD) sh tests/run.sh

test-fast: $(BUILD)/moe $(BUILD)/moe_tests
	@BUILD=$(BUILD) NO_ASAN=1 sh tests/run.sh

# The main job (tools/demo.sh, 3-4 minutes on 2 cores): install the text
# packages, build, make a five-domain corpus, train a tokenizer and a small
# MoE, then print samples, expert load, domain x expert tables with the
# mutual information, and the HTML report's path. demo-ci: the same steps on
# a tiny corpus for a few steps (seconds once built). Output under
# $(BUILD)/demo and $(BUILD)/demo-ci.
demo:
	@BUILD=$(BUILD) bash tools/demo.sh full
demo-ci:
	@BUILD=$(BUILD) bash tools/demo.sh ci

# A random model with OLMoE-1B-7B's shape (4 of its 16 layers, BF16),
# described and its inference measured against this machine.
OLMOE_MODEL := $(BUILD)/bench-olmoe/olmoe-1b-7b-4l
bench-olmoe: all
	@mkdir -p $(dir $(OLMOE_MODEL))
	@test -f $(OLMOE_MODEL)/model.safetensors || $(BUILD)/moe init --preset olmoe-1b-7b --layers 4 $(OLMOE_MODEL)
	$(BUILD)/moe info $(OLMOE_MODEL)
	$(BUILD)/moe bench $(OLMOE_MODEL) --prompt 64 --gen 32 --threads 2

# The same shape quantized to Q8_0 and Q4_0 GGUF (moe quantize), prefill and
# decode measured in alternating rounds (bench/olmoe_quant.sh; ROUNDS=3).
bench-olmoe-q: all
	@BUILD=$(BUILD) sh bench/olmoe_quant.sh

clean:
	rm -rf $(BUILD)

# ---- shared library, pkg-config file, install ---------------------------
# $(BUILD)/libmoe.so.0 (soname libmoe.so.0; $(BUILD)/libmoe.so links to it)
# is built from a second, position-independent compile of the library in
# $(BUILD)/pic, so libmoe.a and the CLI keep their non-PIC code. It exports
# only the moe_* names (src/libmoe.map). install writes moe.pc, the
# pkg-config file of the installed tree:
#   cc app.c $(pkg-config --cflags --libs moe)            shared
#   cc app.c $(pkg-config --cflags --libs --static moe)   static: adds the deps
# make install PREFIX=/usr/local DESTDIR= : bin/moe, lib/libmoe.a,
# lib/libmoe.so.0 + lib/libmoe.so, include/moe*.h, lib/pkgconfig/moe.pc.
# docs/LIBRARY.md shows a program built against it.
PREFIX ?= /usr/local
DESTDIR ?=
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MOE_VERSION := $(shell sed -n 's/^\#define MOE_VERSION "\(.*\)"/\1/p' cli/cli.h)
PIC := $(BUILD)/pic
DEB_PKGS += pkg-config # tests/cli/install.sh builds docs/example.c with it
DEB_PKGS += time # tests/cli/cache.sh measures the maximum RSS with /usr/bin/time -v
PIC_LIB_OBJ := $(LIB_SRC:%.c=$(PIC)/%.o)

.PHONY: shared install uninstall
all: $(BUILD)/libmoe.so
shared: $(BUILD)/libmoe.so

$(BUILD)/libmoe.so.0: $(PIC_LIB_OBJ) src/libmoe.map
	$(CC) $(CFLAGS) -shared -Wl,-soname,libmoe.so.0 -Wl,--version-script=src/libmoe.map \
	  -o $@ $(PIC_LIB_OBJ) $(LDLIBS)
$(BUILD)/libmoe.so: $(BUILD)/libmoe.so.0
	ln -sf libmoe.so.0 $@

# moe.pc names PREFIX, so it is written by install itself.
MOE_PC = printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
  'Name: moe' 'Description: Mixture-of-Experts language models on the CPU' \
  'Version: $(MOE_VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lmoe' \
  'Libs.private: $(LDLIBS)'

$(PIC)/%_avx512.o: %_avx512.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC $(FLAGS_AVX512) -MMD -MP -c -o $@ $<
$(PIC)/%_avx2.o: %_avx2.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC $(FLAGS_AVX2) -MMD -MP -c -o $@ $<
$(PIC)/%.o: %.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fPIC -MMD -MP -c -o $@ $<

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(BUILD)/moe $(DESTDIR)$(PREFIX)/bin/moe
	install -m 644 $(BUILD)/libmoe.a $(DESTDIR)$(LIBDIR)/libmoe.a
	install -m 755 $(BUILD)/libmoe.so.0 $(DESTDIR)$(LIBDIR)/libmoe.so.0
	ln -sf libmoe.so.0 $(DESTDIR)$(LIBDIR)/libmoe.so
	install -m 644 include/moe*.h $(DESTDIR)$(INCLUDEDIR)/
	$(MOE_PC) > $(DESTDIR)$(LIBDIR)/pkgconfig/moe.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/moe $(DESTDIR)$(LIBDIR)/libmoe.a $(DESTDIR)$(LIBDIR)/libmoe.so \
	  $(DESTDIR)$(LIBDIR)/libmoe.so.0 $(DESTDIR)$(LIBDIR)/pkgconfig/moe.pc
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(wildcard include/moe*.h)))

# The CLI suite tests/cli/install.sh installs into a temporary PREFIX.
test test-fast: $(BUILD)/libmoe.so
-include $(PIC_LIB_OBJ:.o=.d)
# ---- end of shared library, pkg-config file, install --------------------

# Kernel benchmark (not part of `all`): GEMV GB/s and GEMM GFLOP/s against the
# machine's probed limits. Links only the objects it needs.
KERN_OBJ := $(patsubst %.c,$(BUILD)/%.o,src/base/pool.c src/base/err.c src/base/numa.c $(sort $(wildcard src/kernels/*.c)))
bench-kernels: $(BUILD)/kernels_bench
$(BUILD)/kernels_bench: $(BUILD)/bench/kernels_bench.o $(KERN_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Quantized-matmul benchmark (not part of `all`): GEMV GB/s per GGUF type,
# GEMM GFLOP/s, grouped MoE decode. Same objects as bench-kernels.
bench-quant: $(BUILD)/quant_bench
$(BUILD)/quant_bench: $(BUILD)/bench/quant_bench.o $(KERN_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# One expert-shaped quantized product at a few rows of x (not part of `all`).
bench-expert-rows: $(BUILD)/expert_rows
$(BUILD)/expert_rows: $(BUILD)/bench/expert_rows.o $(BUILD)/libmoe.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# One block of causal attention on one thread (not part of `all`).
bench-attn-block: $(BUILD)/attn_block_bench
$(BUILD)/attn_block_bench: $(BUILD)/bench/attn_block_bench.o $(KERN_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Tokens per expert in a prefill of random ids (not part of `all`).
bench-route: $(BUILD)/route_counts
$(BUILD)/route_counts: $(BUILD)/bench/route_counts.o $(BUILD)/libmoe.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Fuzzing (not part of `all` or `test`): a libFuzzer target per parser, under
# ASan+UBSan, each run for FUZZ_SECONDS from its seeds fuzz/corpus/NAME
# (written from tests/fixtures by fuzz/make_corpus.sh). `make fuzz` builds
# and runs them all (`make -j2 -O fuzz`: two at a time); `make fuzz-NAME`
# one. Inputs that find new paths go to $(BUILD)/fuzz/corpus-NAME, a
# crashing input to $(BUILD)/fuzz/crash-*.
#   gguf            GGUF reader and writer (src/formats/gguf*.c)
#   safetensors     safetensors reader
#   hf_config       config.json -> moe_config, and back
#   tokenizer_json  tokenizer.json, then encode/decode
#   tokenizer_gguf  a GGUF file's tokenizer.ggml.* metadata, then encode/decode
#   model_gguf      a model from a GGUF file, then a 3-token forward
#   data            token shards (src/train/data.c)
#   trainer_state   a checkpoint's trainer_state.json
#   chat_template   a chat template (then NUL and a JSON context), parsed and rendered
#   serve_request   moe serve's request bodies, and its replies (serve/)
# The library is compiled once more with the fuzzing flags under
# $(BUILD)/fuzz/obj. Needs clang with the libFuzzer runtime (Debian: clang,
# libclang-rt-14-dev; installed here when missing, as `deps` does).
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_DEB_PKGS := clang libclang-rt-14-dev
FUZZ_TARGETS := gguf safetensors hf_config tokenizer_json tokenizer_gguf model_gguf data trainer_state chat_template serve_request
FUZZ_SAN := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_FLAGS := $(CFLAGS_BASE) -Itests $(FUZZ_SAN)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
# the longest input each target is given
FUZZ_MAX_LEN_gguf := 65536
FUZZ_MAX_LEN_safetensors := 16384
FUZZ_MAX_LEN_hf_config := 8192
FUZZ_MAX_LEN_tokenizer_json := 65536
FUZZ_MAX_LEN_tokenizer_gguf := 65536
FUZZ_MAX_LEN_model_gguf := 65536
FUZZ_MAX_LEN_data := 16384
FUZZ_MAX_LEN_trainer_state := 4096
FUZZ_MAX_LEN_chat_template := 16384
FUZZ_MAX_LEN_serve_request := 8192
FUZZ_RUN = echo "== fuzz $(1) ($(FUZZ_SECONDS) s)" && mkdir -p $(BUILD)/fuzz/corpus-$(1) && \
	$(BUILD)/fuzz/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN_$(1)) -timeout=10 \
	  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/crash-$(1)- \
	  $(BUILD)/fuzz/corpus-$(1) fuzz/corpus/$(1)

.PHONY: fuzz fuzz-build $(FUZZ_TARGETS:%=fuzz-%)
fuzz-build: $(FUZZ_BINS)
# every target in turn; with -j, as many at once (-O keeps each one's output together)
fuzz: $(FUZZ_TARGETS:%=fuzz-%)
$(FUZZ_TARGETS:%=fuzz-%): fuzz-%: $(BUILD)/fuzz/fuzz_%
	@$(call FUZZ_RUN,$*)

$(BUILD)/fuzz/libmoe.a: $(FUZZ_LIB_OBJ)
	ar rcs $@ $^
$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h $(BUILD)/fuzz/libmoe.a | $(BUILD)/fuzz/.clang-ok
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(BUILD)/fuzz/libmoe.a $(LDLIBS)
# serve_request also links the server's pure sources
$(BUILD)/fuzz/fuzz_serve_request: fuzz/fuzz_serve_request.c fuzz/fuzz_util.h $(SERVE_PURE_SRC) $(BUILD)/fuzz/libmoe.a | $(BUILD)/fuzz/.clang-ok
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(SERVE_PURE_SRC) $(BUILD)/fuzz/libmoe.a $(LDLIBS)
# The SIMD kernels without clang's pointer-overflow check: with it one file
# (quant_r16k_avx512.c) took 9 minutes and 3.5 GB to compile, 2 without it;
# ASan still checks every access they make, and the gcc ASan+UBSan build
# (make test) keeps the whole of UBSan on them.
FUZZ_SIMD := -fno-sanitize=pointer-overflow
$(BUILD)/fuzz/obj/%_avx512.o: %_avx512.c | deps $(BUILD)/fuzz/.clang-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SIMD) -fsanitize=fuzzer-no-link $(FLAGS_AVX512) -MMD -MP -c -o $@ $<
$(BUILD)/fuzz/obj/%_avx2.o: %_avx2.c | deps $(BUILD)/fuzz/.clang-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_SIMD) -fsanitize=fuzzer-no-link $(FLAGS_AVX2) -MMD -MP -c -o $@ $<
$(BUILD)/fuzz/obj/%.o: %.c | deps $(BUILD)/fuzz/.clang-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# Can FUZZ_CC link a libFuzzer target? If not, install clang and its runtime.
FUZZ_PROBE = printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
             > $(@D)/probe.c && $(FUZZ_CC) -fsanitize=fuzzer -o $(@D)/probe $(@D)/probe.c >/dev/null 2>&1
$(BUILD)/fuzz/.clang-ok:
	@mkdir -p $(@D)
	@if ! ( $(FUZZ_PROBE) ); then \
	  echo "installing Debian packages: $(FUZZ_DEB_PKGS)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_DEB_PKGS) >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_DEB_PKGS) >/dev/null; fi; \
	fi
	@$(FUZZ_PROBE) || { echo "$(FUZZ_CC) cannot build a libFuzzer target"; exit 1; }
	@rm -f $(@D)/probe $(@D)/probe.c
	@touch $@

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BINS:=.d) $(BUILD)/bench/kernels_bench.d $(BUILD)/bench/quant_bench.d $(BUILD)/bench/attn_block_bench.d $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(SERVE_OBJ:.o=.d) $(ASAN_SERVE_OBJ:.o=.d) $(ASAN_CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(ASAN_LIB_OBJ:.o=.d) $(ASAN_TEST_OBJ:.o=.d)
