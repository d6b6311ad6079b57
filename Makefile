# vlp: make (library + CLI), make test, make demo, make bench, make install PREFIX=...
# make test SANITIZE=1 builds everything under ASan+UBSan into build-san/.

PREFIX ?= /usr/local
CC = gcc
SANITIZE ?= 0
VERBOSE ?= 0

ifeq ($(SANITIZE),1)
BUILD ?= build-san
OPT = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN = -fsanitize=address,undefined
else
BUILD ?= build
OPT = -O3 -g
LDSAN =
endif

# x86-64-v3 (AVX2, FMA: every x86 server since 2013) for the elementwise kernels;
# GEMM picks AVX-512 at run time where the CPU has it. MARCH=native for your own box.
MARCH ?= x86-64-v3
# The three -Werror= are errors in gcc 14 already: a call with the wrong pointer type crashes at run time.
CFLAGS = -std=c11 $(OPT) -march=$(MARCH) -fno-math-errno -fno-trapping-math -fopenmp -fPIC -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE \
         -Werror=incompatible-pointer-types -Werror=implicit-function-declaration -Werror=int-conversion \
         -Iinclude -Isrc -Isrc/core -Isrc/ops -I/usr/include/stb -fvisibility=hidden
# Libraries libvlp uses (see scripts/deps.sh for why each one).
LIBS = -lutf8proc -ljansson -lpng -ljpeg -lwebp -lgif -larchive -lpthread -lz -lm
LDLIBS = -fopenmp $(LIBS) $(LDSAN)

LIB_SRC := $(sort $(wildcard src/*/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC := $(sort $(wildcard tools/vlp/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_C := bench/train_step.c bench/gemm_shapes.c bench/clip_bench.c bench/gemm_cpu.c bench/tokenizer_bench.c bench/image_bench.c \
           bench/caption_image_use.c
BENCH_BIN := $(BENCH_C:bench/%.c=$(BUILD)/bench/%) $(BUILD)/bench/fma_peak

.PHONY: all lib cli test demo demo-toy bench bench-train bench-finetune bench-train-full bench-clip bench-recipes bench-tasks install uninstall clean deps deps-bench deps-test fuzz
all: deps $(BUILD)/libvlp.a $(BUILD)/libvlp.so $(BUILD)/vlp

# Installs missing Debian packages (as root) or says exactly what to install.
deps:
	@bash scripts/deps.sh --check build 2>/dev/null || bash scripts/deps.sh build
deps-bench:
	@bash scripts/deps.sh --check bench 2>/dev/null || bash scripts/deps.sh bench

# Order-only: with -j, packages are installed before anything compiles.
$(LIB_OBJ) $(CLI_OBJ): | deps

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*/*.h)
	@mkdir -p $(dir $@)
	$(if $(filter 1,$(VERBOSE)),,@echo "  CC $<";) $(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libvlp.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libvlp.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS) -Wl,-soname,libvlp.so.0

$(BUILD)/vlp: $(CLI_OBJ) $(BUILD)/libvlp.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libvlp.a $(LDLIBS)

# Tests link the static library and may use internal headers.
$(BUILD)/tests/%: tests/%.c tests/test.h tests/test_util.h tests/test_ref.h $(BUILD)/libvlp.a
	@mkdir -p $(dir $@)
	$(if $(filter 1,$(VERBOSE)),,@echo "  LD $@";) $(CC) $(CFLAGS) -fvisibility=default -Itests $< -o $@ $(BUILD)/libvlp.a $(LDLIBS)

# Helper programs of the test scripts (tests/test_report.sh reads its screenshot with png_colors).
TEST_TOOLS := $(BUILD)/tests/tools/png_colors
$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/libvlp.a
	@mkdir -p $(dir $@)
	$(if $(filter 1,$(VERBOSE)),,@echo "  LD $@";) $(CC) $(CFLAGS) -fvisibility=default $< -o $@ $(BUILD)/libvlp.a $(LDLIBS)

test: deps-test $(TEST_BIN) $(TEST_TOOLS) $(BUILD)/vlp $(BUILD)/libvlp.so
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) bash tests/run.sh $(BUILD) $(TEST_BIN) tests/test_cli.sh tests/test_install.sh tests/test_report.sh tests/test_vl_eval.sh

# The main job: emoji benchmark from npm, pre-train emoji-s, evaluate, classify (scripts/demo.sh).
demo: all
	BUILD=$(BUILD) bash scripts/demo.sh

# The first demo: a 2-block transformer learns to reverse tokens (seconds; no data needed).
demo-toy: all
	$(BUILD)/vlp demo

# ---- benchmarks: every number in BENCHMARKS.md -------------------------------------
$(BUILD)/bench/fma_peak: bench/fma_peak.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -fopenmp $< -o $@

$(BUILD)/bench/%: bench/%.c $(BUILD)/libvlp.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libvlp.a $(LDLIBS)

bench: deps-bench all $(BENCH_BIN)
	@bash bench/run.sh $(BUILD)

# emoji-s and emoji-albef-s training steps, vlp vs PyTorch on the same batches (STEPS=30 WARM=3
# THREADS=2; ALBEF=0 skips albef-s).
bench-train: deps-bench all
	@bash bench/train_emoji.sh $(BUILD)

# The albef-s fine-tuning on vqa and nlvr in vlp and its PyTorch twin (same weights, head init and
# batches; step-0 check, then STEPS=30 timed); FULL=1: the whole 300-step runs, scored side by side.
# PRE=DIR: the pre-trained model (default bench/out/recipes/albef/model).
bench-finetune: deps-bench all
	@bash bench/finetune_twin.sh $(BUILD)

# ViT-B/32 inference in rounds: PyTorch, vlp, vlp without fusion and packed weights (ROUNDS=2).
bench-clip: deps-bench all $(BENCH_BIN)
	@BUILD=$(BUILD) bash bench/clip_rounds.sh

# The full emoji-s recipe (600 steps) in vlp (seeds 0 and 1) and PyTorch, metrics side by side (~50 min).
bench-train-full: deps-bench all
	@bash bench/train_full.sh $(BUILD)

# The fusion / captioning recipes (configs/emoji-{albef,vlmo,vilt,cap}-s.json, 600 steps each),
# trained and scored: retrieval (ITC, ITM re-ranking), captioning BLEU-4 / CIDEr-D (~1.5 h).
bench-recipes: deps-bench all $(BUILD)/bench/caption_image_use
	@bash bench/recipes.sh $(BUILD)

# The downstream matrix: the emoji-s dual encoder zero-shot + probe, each fusion recipe fine-tuned on
# vqa, nlvr, mc, ground2, ground3 (needs bench-train-full's and bench-recipes' models).
bench-tasks: deps-bench all
	@bash bench/tasks.sh $(BUILD)

# ---- fuzzing: clang + libFuzzer with ASan/UBSan; make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS=...] ----
# Each target links only the module it exercises. Results: fuzz/README.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= tokenizer wordpiece image safetensors tar_csv tasks
FUZZ_CFLAGS = -std=c11 -g -O1 -march=$(MARCH) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -D_GNU_SOURCE -Iinclude -Isrc -Isrc/core -I/usr/include/stb
FUZZ_SRC_tokenizer = $(sort $(wildcard src/text/*.c)) src/core/error.c
FUZZ_LIBS_tokenizer = -lutf8proc -lz -lpthread
FUZZ_SRC_image = $(sort $(wildcard src/image/*.c)) src/core/error.c
FUZZ_LIBS_image = -lpng -ljpeg -lwebp -lgif -lz -lm
FUZZ_SRC_safetensors = src/io/safetensors.c src/core/error.c
FUZZ_LIBS_safetensors = -ljansson -lm
FUZZ_SRC_tar_csv = src/data/dataset.c src/data/tar.c src/data/csv.c src/data/folder.c src/core/error.c
FUZZ_LIBS_tar_csv = -larchive -ljansson
FUZZ_SRC_wordpiece = $(FUZZ_SRC_tokenizer)
FUZZ_LIBS_wordpiece = $(FUZZ_LIBS_tokenizer)
FUZZ_SRC_tasks = src/eval/tasks.c src/eval/metrics.c src/core/error.c
FUZZ_LIBS_tasks = -ljansson -lutf8proc -lm
define FUZZ_RULE
$(BUILD)/fuzz/fuzz_$(1): fuzz/fuzz_$(1).c $(FUZZ_SRC_$(1)) $(wildcard include/*.h src/*/*.h src/*/*.inc) | deps-test
	@mkdir -p $$(dir $$@)
	clang $(FUZZ_CFLAGS) $$< $(FUZZ_SRC_$(1)) $(FUZZ_LIBS_$(1)) -o $$@
endef
$(foreach t,tokenizer wordpiece image safetensors tar_csv tasks,$(eval $(call FUZZ_RULE,$(t))))

deps-test: deps # the test group adds headless Chromium (the report test) and clang (fuzz)
	@bash scripts/deps.sh --check test 2>/dev/null || bash scripts/deps.sh test
fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
	@bash fuzz/run.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/*.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libvlp.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libvlp.so $(DESTDIR)$(PREFIX)/lib/libvlp.so.0
	ln -sf libvlp.so.0 $(DESTDIR)$(PREFIX)/lib/libvlp.so
	install -m 755 $(BUILD)/vlp $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBS_PRIVATE@|-fopenmp $(LIBS)|' -e 's|@VERSION@|$(shell sed -n 's/.*VLP_VERSION "\(.*\)"/\1/p' include/vlp.h)|' \
	    vlp.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/vlp.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/vlp*.h $(DESTDIR)$(PREFIX)/lib/libvlp.* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/vlp.pc $(DESTDIR)$(PREFIX)/bin/vlp

clean:
	rm -rf build build-san
