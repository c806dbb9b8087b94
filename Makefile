# yt-downloader — everyday commands. `make demo` and `make test` are the two a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: install system-deps run worker demo test test-fast check lock smoke bench clean

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

# Commas inside $(or …) would split the queue list: plain variables.
WORKER_QUEUES ?= clips,live,encodes
WORKER_CONCURRENCY ?= 2
worker: install  ## a Celery worker for JOB_BACKEND=celery (WORKER_QUEUES, WORKER_CONCURRENCY)
	$(VENV)/bin/celery -A src.worker worker --pool=prefork -Q $(WORKER_QUEUES) -c $(WORKER_CONCURRENCY) -l INFO

demo: install  ## local source from the bundled clip → API → save a 30 s clip → download → ffprobe
	$(PY) -m scripts.demo

test: install  ## the whole test suite
	$(PY) -m pytest -q

test-fast: install  ## the inner loop: all but tests marked slow (encodes, browsers, processes), 2 workers
	$(PY) -m pytest -q -m "not slow" -n auto

check: install  ## ruff (lint, import order) and mypy (types of src/), settings in pyproject.toml
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

lock: install  ## re-pin requirements.txt / requirements-dev.txt from the .in files (needs PyPI)
	$(VENV)/bin/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links -o requirements.txt requirements.in
	$(VENV)/bin/pip-compile --quiet --strip-extras --allow-unsafe --no-emit-index-url \
		--no-emit-find-links -o requirements-dev.txt requirements-dev.in

smoke: install  ## deploy smoke: gunicorn behind a real nginx on loopback (needs nginx, Redis)
	$(PY) -m scripts.deploy_smoke

bench: install  ## benchmarks (clip, api, encode, serve; needs nginx, wrk, Redis) → bench/results.md
	$(PY) -m bench

.PHONY: update-ytdlp
update-ytdlp:  ## upgrade yt-dlp (+ ejs, deno, PO-token plugin) in the venv; self-check, roll back on failure
	$(PY) -m src.services.ytdlp_update

clean:
	rm -rf .cache downloads/* uploads/* .pytest_cache
