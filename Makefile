# Two commands for a fresh clone: `make reproduce` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: test reproduce lab browser-test bench gpu-check assignments formgrader clean

# torch first and pinned, so pip never resolves it to a CUDA build. ipykernel writes the kernel
# spec through a temporary folder that it leaves behind: TMPDIR keeps it inside .venv, not /tmp.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[lab,teach,dev]'
	mkdir -p $(VENV)/tmp && TMPDIR="$(abspath $(VENV))/tmp" $(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg tests notebooks

reproduce: $(STAMP)
	$(PY) -m gocor reproduce

# The course root (nbgrader's layout: source/, release/, submitted/, autograded/, feedback/,
# gradebook.db), course/ by default. `make assignments` writes the student versions to
# $(COURSE)/release/<assignment>/ with nbgrader generate_assignment.
COURSE ?= course
assignments: $(STAMP)
	$(PY) -m gocor assignments generate --course $(COURSE)

# nbgrader's formgrader on the course root: JupyterLab is started inside $(COURSE), so the course
# root is the notebook server's root (the formgrader refuses a course root outside it), with the
# venv's scripts on PATH; as root (containers) it needs --allow-root. Opens /formgrader.
FORMGRADER_ARGS ?=
formgrader: $(STAMP)
	cd $(COURSE) && env -u MPLBACKEND PATH="$(abspath $(VENV))/bin:$$PATH" "$(abspath $(VENV))/bin/jupyter" lab \
	  $(if $(filter 0,$(shell id -u)),--allow-root) --LabApp.default_url=/formgrader $(FORMGRADER_ARGS)

bench: $(STAMP)
	$(PY) -m gocor bench

# On a machine with one NVIDIA GPU (under 8 minutes): the CUDA tests, the bench on CUDA, and a
# full-profile training step of corr and gocor (float32 and bf16 autocast) -> build/gpu_check.json.
# Without CUDA it stops with a message and exit status 2. Not run on a GPU yet.
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py --out build/gpu_check.json

# MPLBACKEND is unset for JupyterLab: with Agg exported, ipykernel does not switch to the inline
# backend and no figure (plt.show(), the volume explorer) appears. As root (containers) JupyterLab
# refuses to start without --allow-root. tests/test_browser.py starts JupyterLab with this same
# target (`make lab LAB_ARGS="--no-browser --port=..."`), so the two cannot drift apart.
# The student's lab has no instructor tools: gocor/teach/student_lab/, first on
# JUPYTER_CONFIG_PATH for this command only, turns nbgrader's server extensions off (its menus'
# back end and the "No nbgrader_config.py" warning) and its JupyterLab extension (the nbgrader
# menus, the "Create Assignment" sidebar). `make formgrader` keeps both.
STUDENT_LAB := $(abspath gocor/teach/student_lab)
LAB_ARGS ?=
LAB_CONFIG_PATH = $(STUDENT_LAB)$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))
LAB_CMD = env -u MPLBACKEND JUPYTER_CONFIG_PATH="$(LAB_CONFIG_PATH)" $(VENV)/bin/jupyter lab \
  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) notebooks/

lab: $(STAMP)
	$(LAB_CMD)

# Real-browser test of `make lab` (Debian's chromium + selenium; not part of `make test`): no
# instructor tools in it (and still in `make formgrader`), then every notebook run with Run All.
# Installs chromium/chromium-driver with apt when absent and root; skips with a reason otherwise.
browser-test: $(STAMP)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && apt-get install -y -q chromium chromium-driver; \
	  else echo "chromium/chromedriver absent and not root: the browser test will skip"; fi; fi
	$(PY) -c "import selenium" 2>/dev/null || $(PY) -m pip install -q selenium
	$(PY) -m pytest -q -s -m browser -rs tests/test_browser.py

clean:
	rm -rf build
