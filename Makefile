# yt-downloader — everyday commands. `make demo` and `make test` are the two a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install system-deps run demo test smoke bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

install: system-deps $(VENV)/.installed  ## virtualenv + pinned requirements (+ ffmpeg)

system-deps:  ## ffmpeg/ffprobe through apt-get when missing and running as root
	@bash scripts/system_deps.sh

run: install  ## serve the API on HOST:PORT (default 127.0.0.1:5000)
	$(PY) run.py

demo: install  ## local source from the bundled clip → API → save a 30 s clip → download → ffprobe
	$(PY) -m scripts.demo

test: install  ## the whole test suite
	$(PY) -m pytest -q

smoke: install  ## deploy smoke: gunicorn behind a real nginx on loopback (needs nginx, Redis)
	$(PY) -m scripts.deploy_smoke

bench: install  ## benchmarks (clip, api, encode, serve; needs nginx, wrk, Redis) → bench/results.md
	$(PY) -m bench

clean:
	rm -rf .cache downloads/* uploads/* .pytest_cache
