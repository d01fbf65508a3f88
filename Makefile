# edgetrain — build, test and gate targets. `make test` is the one command CI runs.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
ASAN_VENV ?= .venv-asan
CC ?= cc
CORE_SRC := $(wildcard csrc/src/*.c)
HOST_CFLAGS := -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow -Icsrc/include

.PHONY: all venv install demo test test-python test-asan test-c-driver check-c arm-check check-dist fuzz fuzz-build \
	fuzz-if-available test-summary clean

# The skip ledger of `make test`: one line per thing not run for want of an optional tool or data
# set (pytest's skips via tests/conftest.py, and the optional steps here), printed at the end.
# EDGETRAIN_REQUIRE_ALL=1 (set by .ci/run) turns each such skip into a failure.
SKIP_LOG := build/test-skips.txt

all: install

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -U pip "setuptools>=77" wheel
	touch $@

venv: $(VENV)/.created

# Package extras the main venv gets: dev (pytest, hypothesis, tflite) and tf
# (TensorFlow, for the Keras export tests; ~1.6 GB). `make install EXTRAS=dev`
# leaves TensorFlow out (its tests then skip, saying so).
EXTRAS ?= dev,tf
comma := ,
WITH_TF := $(if $(filter tf,$(subst $(comma), ,$(EXTRAS))),1,0)

# Editable install: rebuilds edgetrain._core from csrc/ every time it runs.
install: venv
	$(VPY) -m pip install -e '.[$(EXTRAS)]'

# The README's first command: install with the minimal extras (matplotlib for the plot; no TensorFlow)
# and run `edgetrain demo` (pretrained mcu-cnn on an emulated RRAM MCU under weight drift).
demo: venv
	$(VPY) -m pip install -e '.[plots]'
	$(VPY) -m edgetrain demo

# pytest-xdist workers for both pytest passes of `make test` (one per CPU core by default; PYTEST_WORKERS=0
# runs in one process). Each test file stays on one worker: several build their C drivers once per file.
PYTEST_WORKERS ?= auto
XDIST := -n $(PYTEST_WORKERS) --dist loadfile

# The whole suite: the strict host compile, host twin tests (incl. the ARM gate test), the suite
# again with the core under AddressSanitizer + UBSan, the C driver under the same sanitizers over
# the fuzz corpus, an sdist/wheel round trip, and (with clang + libFuzzer) the fuzzer. Ends with
# what was skipped and how to enable it.
test: install check-c
	@mkdir -p build && rm -f $(SKIP_LOG) && touch $(SKIP_LOG)
	EDGETRAIN_SKIP_LOG=$(CURDIR)/$(SKIP_LOG) EDGETRAIN_REQUIRE_TF=$(WITH_TF) $(VPY) -m pytest $(XDIST)
	$(MAKE) test-asan
	$(MAKE) test-c-driver
	$(MAKE) check-dist
	$(MAKE) fuzz-if-available
	@$(MAKE) --no-print-directory test-summary

test-summary:
	@if [ -s $(SKIP_LOG) ]; then \
		echo "make test: passed; skipped for want of an optional tool or data set (install it to run these):"; \
		sed 's/^/  /' $(SKIP_LOG); \
	else echo "make test: passed; nothing skipped"; fi

test-python: install
	$(VPY) -m pytest

# Strict host compile of every core file on its own, at -O0 and -O2, as position-independent
# code and not (warnings such as -Wmaybe-uninitialized depend on both).
CHECK_C_VARIANTS := -O0 -O2 "-O0 -fPIC" "-O2 -fPIC"
check-c:
	@for v in $(CHECK_C_VARIANTS); do \
		for f in $(CORE_SRC); do $(CC) $(HOST_CFLAGS) $$v -c $$f -o /dev/null || { echo "check-c: $$f fails with $$v"; exit 1; }; done; \
	done
	@echo "check-c: $(words $(CORE_SRC)) core files compile with $(HOST_CFLAGS) at each of $(CHECK_C_VARIANTS)"

# The whole C call sequence (tests/c/drive.c: parse, plan, init, steps, checkpoint, recovery,
# under SGD, LRT and bias training) over the fuzz corpus and the shipped model, with the core
# built under AddressSanitizer + UBSan, halting at the first finding.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
DRIVER_INPUTS := tests/fuzz/seeds tests/fuzz/regressions edgetrain/model/pretrained/mcu-cnn.etm

build/c/drive_etm: tests/c/drive_etm.c tests/c/drive.c tests/c/drive.h $(CORE_SRC) $(wildcard csrc/include/edgetrain/*.h)
	@mkdir -p build/c
	$(CC) -std=c99 -g -O1 -Wall -Wextra -Werror -D_DEFAULT_SOURCE $(SAN_FLAGS) -Icsrc/include \
		tests/c/drive_etm.c tests/c/drive.c $(CORE_SRC) -o $@

test-c-driver: build/c/drive_etm
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		build/c/drive_etm $(DRIVER_INPUTS)

# Cross-compile the core for cortex-m0plus/m4/m33; no float, malloc or stdio; sizes.
arm-check:
	$(PYTHON) tools/arm_gate.py --verbose

# The suite against a core built with -fsanitize=address,undefined, in its own
# venv (a non-editable install, so the sanitized build never replaces the normal one).
# libstdc++ is preloaded beside libasan so that C++ extensions that throw
# (matplotlib's ft2font) find the real __cxa_throw behind ASan's interceptor.
test-asan:
	test -x $(ASAN_VENV)/bin/python || $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip install -U pip "setuptools>=77" wheel
	$(ASAN_VENV)/bin/python -m pip install '.[dev]'
	EDGETRAIN_SANITIZE=1 $(ASAN_VENV)/bin/python -m pip install --force-reinstall --no-deps --no-cache-dir .
	cd tests && LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libstdc++.so.6)" \
		ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		EDGETRAIN_HYPOTHESIS=quick EDGETRAIN_EXPECT_SANITIZED=1 \
		../$(ASAN_VENV)/bin/python -m pytest $(XDIST) -p no:cacheprovider -q -m "not slow and not arm" --rootdir=.. -c ../pyproject.toml .

# Build the sdist and wheel, install the wheel built from the sdist into a
# throwaway venv, and check the core imports and the headers ship.
check-dist: venv
	rm -rf dist build/dist-venv
	$(VPY) -m pip install -q build
	$(VPY) -m build -q --sdist --outdir dist .
	$(VPY) -m build -q --wheel --outdir dist dist/edgetrain-*.tar.gz
	$(PYTHON) -m venv build/dist-venv
	build/dist-venv/bin/python -m pip install -q dist/edgetrain-*.whl
	cd build && dist-venv/bin/python -c "import edgetrain, edgetrain._core, os; \
		d = edgetrain.include_dir(); assert 'site-packages' in d, d; \
		assert os.path.isfile(os.path.join(d, 'edgetrain', 'edgetrain.h')); \
		from edgetrain.model.loader import load_model, pretrained_path; \
		assert 'site-packages' in str(pretrained_path('mcu-cnn-pretrained')); m = load_model('mcu-cnn-pretrained'); \
		print('check-dist: wheel from sdist imports edgetrain._core; headers in', d, '; pretrained', m.name, m.n_weights(), 'weights')"

# Fuzz the .etm parser and what follows it (tests/fuzz/fuzz_etm.c: et_etm_parse, then for an
# accepted blob plan -> init -> one training step -> checkpoint -> recovery under three optimizers,
# arenas capped at FUZZ_ARENA_CAP bytes) with libFuzzer + ASan + UBSan for FUZZ_SECONDS (or
# FUZZ_RUNS executions when given). Seeds: tests/fuzz/seeds; crash reproducers live in
# tests/fuzz/regressions and are replayed first (and by pytest and the C driver). New corpus
# entries go to build/fuzz/corpus (not checked in); a crash is written to build/fuzz/crash-* and
# fails the target.
CLANG ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_ARENA_CAP ?= 1048576
FUZZ_FLAGS := -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Icsrc/include \
	-Itests/c -DFUZZ_ARENA_CAP=$(FUZZ_ARENA_CAP)
FUZZ_INSTALL := apt-get install -y --no-install-recommends clang libclang-rt-14-dev
FUZZ_PROBE := printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	| $(CLANG) -fsanitize=fuzzer -x c - -o build/fuzz-probe >/dev/null 2>&1

fuzz-build: build/fuzz/fuzz_etm

build/fuzz/fuzz_etm: tests/fuzz/fuzz_etm.c tests/c/drive.c tests/c/drive.h $(CORE_SRC) $(wildcard csrc/include/edgetrain/*.h)
	@command -v $(CLANG) >/dev/null || { echo "fuzz: needs clang with libFuzzer (Debian: $(FUZZ_INSTALL))"; exit 1; }
	mkdir -p build/fuzz/corpus
	$(CLANG) $(FUZZ_FLAGS) tests/fuzz/fuzz_etm.c tests/c/drive.c $(CORE_SRC) -o $@

fuzz: fuzz-build
	build/fuzz/fuzz_etm -runs=0 tests/fuzz/regressions tests/fuzz/seeds
	status=0; build/fuzz/fuzz_etm $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS)) \
		-print_final_stats=1 -artifact_prefix=build/fuzz/ -max_len=4096 \
		build/fuzz/corpus tests/fuzz/seeds tests/fuzz/regressions > build/fuzz/last-run.log 2>&1 || status=$$?; \
	grep -E "^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==ERROR|SUMMARY|Test unit written)" build/fuzz/last-run.log; \
	echo "fuzz: $(if $(FUZZ_RUNS),$(FUZZ_RUNS) runs,$(FUZZ_SECONDS) s), exit status $$status (full log: build/fuzz/last-run.log)"; exit $$status

# `make test`'s fuzz step: the fuzzer where clang with libFuzzer is present, else one skip line.
fuzz-if-available:
	@mkdir -p build
	@if $(FUZZ_PROBE); then $(MAKE) --no-print-directory fuzz; else \
		line="make fuzz: skipped: needs clang with libFuzzer (Debian: $(FUZZ_INSTALL))"; \
		echo "$$line"; echo "$$line" >> $(SKIP_LOG); \
		if [ "$$EDGETRAIN_REQUIRE_ALL" = 1 ]; then echo "fuzz: EDGETRAIN_REQUIRE_ALL=1: the fuzzer must run"; exit 1; fi; \
	fi

clean:
	rm -rf build dist *.egg-info edgetrain/_core.*.so edgetrain/_core.c .pytest_cache

# ---- ARM firmware and the firmware author's example (docs/firmware.md) -------------------
# `example`: examples/train_one_sample.c built with the host compiler and run on the shipped
# model (part of check-c); `example-arm`: the same file cross-compiled and linked for each CPU
# (part of arm-check); `firmware`: the training firmware ELFs (csrc/port/cortex-m) in build/firmware;
# `cmake-check`: the CMake build (csrc/CMakeLists.txt) on the host and with cmake/arm-none-eabi.cmake.
ARM_CPUS := cortex-m0plus cortex-m4 cortex-m33
EXAMPLE_MODEL := edgetrain/model/pretrained/mcu-cnn.etm

.PHONY: example example-arm firmware cmake-check

example: build/examples/train_one_sample
	build/examples/train_one_sample $(EXAMPLE_MODEL)

build/examples/train_one_sample: examples/train_one_sample.c $(CORE_SRC) $(wildcard csrc/include/edgetrain/*.h)
	mkdir -p build/examples
	$(CC) $(HOST_CFLAGS) examples/train_one_sample.c $(CORE_SRC) -o $@

example-arm:
	mkdir -p build/examples
	@for cpu in $(ARM_CPUS); do \
		arm-none-eabi-gcc -mcpu=$$cpu -mthumb -mfloat-abi=soft -Os -std=c99 -Wall -Wextra -Werror -Icsrc/include \
			-ffunction-sections -fdata-sections examples/train_one_sample.c $(CORE_SRC) \
			-specs=nano.specs -specs=nosys.specs -Wl,--gc-sections -Wl,--no-warn-mismatch \
			-o build/examples/train_one_sample-$$cpu.elf 2>build/examples/link-$$cpu.log || { cat build/examples/link-$$cpu.log; exit 1; }; \
		echo "example-arm: build/examples/train_one_sample-$$cpu.elf"; done

firmware:
	@for cpu in $(ARM_CPUS); do $(VPY) -m edgetrain firmware --cpu $$cpu -o build/firmware || exit 1; done

cmake-check:
	cmake -S csrc -B build/cmake-host -DCMAKE_BUILD_TYPE=Release
	cmake --build build/cmake-host
	build/cmake-host/train_one_sample $(EXAMPLE_MODEL)
	cmake -S csrc -B build/cmake-arm -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/arm-none-eabi.cmake -DEDGETRAIN_CPU=cortex-m4
	cmake --build build/cmake-arm

check-c: example
arm-check: example-arm
