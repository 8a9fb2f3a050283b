"""The course (``course/``) as an nbgrader course root, and the ``assignments`` command.

A course root has nbgrader's standard layout: ``nbgrader_config.py``, ``source/<assignment>/``
(solution notebooks with ``### BEGIN SOLUTION`` regions, visible and hidden tests, points),
``release/``, ``submitted/<student>/<assignment>/``, ``autograded/``, ``feedback/`` and
``gradebook.db``. ``course/`` itself is one (the default); nbgrader's own CLI run inside it,
the formgrader (``make formgrader``) and this module share its gradebook. This module

- generates the student releases (:func:`generate`) with nbgrader's ``generate_assignment``;
- copies collected notebooks into ``submitted/`` (:func:`collect`);
- autogrades incrementally (:func:`grade`): only submissions that are new or changed, so
  manual grades and the other assignments' entries stay; a submission that fails (a dead
  kernel, a notebook under another name, an unknown folder) is listed, the others are graded;
- writes feedback with the hidden tests removed (:func:`feedback`) and a CSV (:func:`export`).

It never deletes anything: a course root that holds anything the kit did not create is refused
(:class:`CourseRootError`) before anything is written. Grading limits per assignment:
:data:`TIMEOUTS` (seconds for the whole notebook) and :data:`MEMORY_LIMIT` (the kernel's data).
"""
from __future__ import annotations

import argparse
import csv
import difflib
import json
import math
import os
import re
import shutil
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

AssignmentName = Literal["a1_objective", "a2_solver_step", "a3_operators", "a4_ablation"]
ASSIGNMENTS: tuple[AssignmentName, ...] = get_args(AssignmentName)
CellKind = Literal["autograded", "manual"]

COURSE_DIR = Path(__file__).resolve().parents[2] / "course"
"""The kit's course root (``course/``): its ``source/`` and ``nbgrader_config.py`` are tracked."""

OWNED = ("nbgrader_config.py", "source", "release", "submitted", "autograded", "feedback",
         "gradebook.db", "grades.csv", ".nbgrader.log", ".ipynb_checkpoints")
"""What a course root may hold: nbgrader's layout, its log, the CSV of :func:`export`."""
MARKER = "gocor course root"
"""Written into every ``nbgrader_config.py`` the kit owns (``course/`` and those it creates)."""

TIMEOUTS: dict[str, int] = {"a1_objective": 30, "a2_solver_step": 30, "a3_operators": 30, "a4_ablation": 300}
"""Seconds for one whole notebook while autograding (all cells together, kernel start aside):
each cell may run for what is left of its assignment's budget, at least 1 s. The solutions take
under 10 s (a1–a3) and about 30 s (a4, it trains) on a 2-core CPU."""
DEFAULT_TIMEOUT = 30
MEMORY_LIMIT = 2 * 2**30
"""Bytes of data (``RLIMIT_DATA``: heap and anonymous mappings) the grading kernel may hold; a
larger allocation fails in its cell with an out-of-memory error. a4's solution peaks at ~0.6 GB."""


class CourseRootError(ValueError):
    """A course root holds something the kit did not create (the command exits with 2)."""


class GradingError(RuntimeError):
    """nbgrader could not generate an assignment; the message carries its log."""


# ---------------------------------------------------------------------------------------------
# grading limits, read by course/nbgrader_config.py
# ---------------------------------------------------------------------------------------------

class _Clock:
    """Which assignment's notebook the grading kernel is running and since when."""
    assignment: str | None = None
    start: float | None = None
    override: float | None = None     # seconds for every assignment (``grade(timeout=...)``)


def _assignment_of_ids() -> dict[str, str]:
    """grade_id -> assignment for the ids that occur in one assignment only."""
    import nbformat
    seen: dict[str, set[str]] = {}
    for nb_path in sorted((COURSE_DIR / "source").glob("*/*.ipynb")):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid:
                seen.setdefault(gid, set()).add(nb_path.parent.name)
    return {gid: next(iter(names)) for gid, names in seen.items() if len(names) == 1}


_IDS: dict[str, str] = {}


def cell_timeout(cell) -> int:
    """nbclient's ``timeout_func``: the seconds ``cell`` may run. The ``parameters`` cell (the
    first code cell of every course notebook) starts the notebook's clock; the first cell whose
    grade id belongs to one assignment says which :data:`TIMEOUTS` budget applies."""
    if not _IDS:
        _IDS.update(_assignment_of_ids())
    if "parameters" in cell.metadata.get("tags", []) or _Clock.start is None:
        _Clock.start, _Clock.assignment = time.monotonic(), None
    _Clock.assignment = _Clock.assignment or _IDS.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
    budget = _Clock.override or TIMEOUTS.get(_Clock.assignment or "", DEFAULT_TIMEOUT)
    return max(1, math.ceil(budget - (time.monotonic() - _Clock.start)))


def kernel_arguments(memory: int = MEMORY_LIMIT) -> list[str]:
    """Extra arguments of the grading kernel: IPython's history in memory, and its data limited
    to ``memory`` bytes before any cell runs."""
    limit = f"import resource as _r; _r.setrlimit(_r.RLIMIT_DATA, ({memory}, {memory})); del _r"
    return ["--HistoryManager.hist_file=:memory:", f"--InteractiveShellApp.exec_lines={limit}"]


def _feedback_preprocessor():
    from nbconvert.preprocessors import Preprocessor
    from traitlets import Bool

    class HideHiddenTests(Preprocessor):
        """Feedback without the hidden tests: their code (with the seeds and shapes) and the
        mark schemes are cut from the sources, and a test cell's error shows its message only,
        not the traceback (which quotes the failing hidden line)."""
        enabled = Bool(True)

        def preprocess_cell(self, cell, resources, index):
            for begin, end in (("BEGIN HIDDEN TESTS", "END HIDDEN TESTS"), ("BEGIN MARK SCHEME", "END MARK SCHEME")):
                lines, inside = [], False
                for line in cell.source.split("\n"):
                    if begin in line:
                        inside = True
                    elif end in line:
                        inside = False
                    elif not inside:
                        lines.append(line)
                cell.source = "\n".join(lines)
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
                for out in cell.get("outputs", []):
                    if out.get("output_type") == "error":
                        out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
            return cell, resources

    return HideHiddenTests


def _restore_cells_preprocessor():
    from nbconvert.preprocessors import Preprocessor
    from nbformat import from_dict
    from traitlets import Bool

    class RestoreCells(Preprocessor):
        """Before nbgrader's ``OverwriteCells`` (autograde's sanitizing): every cell's nbgrader
        metadata as the gradebook has it, and the locked or graded cells a student deleted put
        back where the release has them.

        nbgrader restores a locked cell's source, type and points, but trusts the rest of the
        student's metadata: a solution cell marked ``grade`` stops autograde ("No such grade
        cell"), so does a test cell unmarked ("Inconsistent checksums"), and a test cell whose
        ``grade_id`` was renamed or that was deleted is not run (nor its hidden tests). Here a
        cell whose ``grade_id`` the gradebook does not know loses its nbgrader metadata (it is the student's own cell), the others get their
        ``grade``/``solution``/``locked``/``points`` back, and a missing locked or graded cell
        is inserted after the cell that precedes it in ``source/`` (the release's text: the
        test with its hidden part restored by ``OverwriteCells``, an answer cell's stub).
        :func:`edited_locked_cells` lists the locked ones among them."""
        enabled = Bool(True)

        def preprocess(self, nb, resources):
            import nbformat
            from nbgrader.api import Gradebook
            info = resources["nbgrader"]
            with Gradebook(info["db_url"]) as gb:
                snb = gb.find_notebook(info["notebook"], info["assignment"])
                sources = {c.name: (c.cell_type, c.locked, c.source) for c in snb.source_cells}
                points = {c.name: float(c.max_score) for c in snb.grade_cells}
                solutions = {c.name for c in snb.solution_cells}
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader")
                if meta is None:
                    continue
                gid = meta.get("grade_id")
                if gid not in sources:
                    del cell.metadata["nbgrader"]
                    continue
                meta["locked"], meta["solution"] = sources[gid][1], gid in solutions
                meta["grade"] = gid in points
                if gid in points:
                    meta["points"] = points[gid]
                else:
                    meta.pop("points", None)
            # the order of the cells: the course's source notebook (the gradebook has none)
            db = str(info["db_url"]).removeprefix("sqlite:///")
            source_nb = Path(db).parent / "source" / info["assignment"] / f"{info['notebook']}.ipynb"
            try:
                order = [c.metadata["nbgrader"]["grade_id"] for c in nbformat.read(source_nb, as_version=4).cells
                         if "grade_id" in c.metadata.get("nbgrader", {})]
            except Exception:   # noqa: BLE001 (no source: missing cells go to the end)
                order = []
            order += [gid for gid in sorted(sources) if gid not in order]
            for i, gid in enumerate(order):
                present = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
                if gid in present or gid not in sources or not (sources[gid][1] or gid in points):
                    continue
                before = [present.index(g) for g in order[:i] if g in present]
                cell_type, locked, source = sources[gid]
                meta = {"grade": gid in points, "grade_id": gid, "locked": locked,
                        "solution": gid in solutions, "schema_version": 3}
                if gid in points:
                    meta["points"] = points[gid]
                cell = {"cell_type": cell_type, "metadata": {"nbgrader": meta}, "source": source}
                if cell_type == "code":
                    cell.update(outputs=[], execution_count=None)
                if (nb.nbformat, nb.nbformat_minor) >= (4, 5):
                    cell["id"] = f"restored-{gid}"[:64]
                nb.cells.insert(max(before) + 1 if before else 0, from_dict(cell))
            return nb, resources

    return RestoreCells


def __getattr__(name: str):
    if name == "HideHiddenTests":      # nbconvert is imported only when feedback is configured
        return _feedback_preprocessor()
    if name == "RestoreCells":         # nor when autograde is
        return _restore_cells_preprocessor()
    raise AttributeError(name)


# ---------------------------------------------------------------------------------------------
# the course root
# ---------------------------------------------------------------------------------------------

def check_root(root: str | Path) -> Path:
    """``root`` resolved, if the kit may write there: it does not exist, is empty, or holds only
    a course root's entries (:data:`OWNED`) with an ``nbgrader_config.py`` the kit wrote.
    Otherwise :class:`CourseRootError`, naming what is in the way; nothing is touched."""
    root = Path(root).resolve()
    if root.exists() and not root.is_dir():
        raise CourseRootError(f"--course {root}: not a folder")
    entries = sorted(os.listdir(root)) if root.is_dir() else []
    foreign = [e for e in entries if e not in OWNED]
    if foreign:
        raise CourseRootError(
            f"--course {root} holds {', '.join(foreign)}, which the kit did not create; nothing was "
            f"changed. Give a new or empty folder (it becomes a course root), or an existing one "
            f"(e.g. course/).")
    config = root / "nbgrader_config.py"
    if entries and not (config.is_file() and MARKER in config.read_text()):
        raise CourseRootError(
            f"--course {root} holds {', '.join(entries)} but no nbgrader_config.py written by the "
            f"kit; nothing was changed. Give a new or empty folder, or an existing course root.")
    return root


def init_course(root: str | Path = COURSE_DIR) -> Path:
    """Make ``root`` a course root (after :func:`check_root`): ``nbgrader_config.py`` reading
    the kit's settings, and a copy of the kit's ``source/`` when it has none. Returns it."""
    root = check_root(root)
    if root == COURSE_DIR:
        return root
    root.mkdir(parents=True, exist_ok=True)
    config = root / "nbgrader_config.py"
    if not config.exists():
        config.write_text(
            f'"""nbgrader settings of this {MARKER} (written by `python -m gocor assignments`):\n'
            f'the kit\'s course settings, with this folder as the course root."""\n'
            f"from pathlib import Path\n\n"
            f"c = get_config()  # noqa: F821 (provided by traitlets)\n"
            f"load_subconfig({str(COURSE_DIR / 'nbgrader_config.py')!r})  # noqa: F821\n"
            f"c.CourseDirectory.root = str(Path(__file__).resolve().parent)\n")
    if not (root / "source").exists():
        shutil.copytree(COURSE_DIR / "source", root / "source",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


def _scripts_on_path() -> None:
    """nbgrader runs the ``alembic`` script from PATH (for its gradebook): make it this
    interpreter's, also when the venv is not activated (``.venv/bin/python -m ...``)."""
    scripts = sysconfig.get_path("scripts")
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, path]) if path else scripts


def _api(root: Path, notebook: str | None = None):
    """nbgrader's API on the course root ``root`` with its own ``nbgrader_config.py``."""
    _scripts_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    config.CourseDirectory.root = str(root)
    if notebook is not None:
        config.CourseDirectory.notebook_id = notebook
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _names(root: Path, assignments: list[str] | None) -> list[str]:
    found = sorted(p.name for p in (root / "source").iterdir() if p.is_dir())
    names = found if assignments is None else list(assignments)
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}; the course has {found}")
    return names


def _keeping_others(folder: Path, make):
    """``make()`` (nbgrader's ``generate_assignment``, which deletes ``folder``, the release,
    before writing it again), with every other file than the notebook in ``folder`` (a handout
    the instructor put beside it) copied back afterwards, also when ``make`` fails."""
    import tempfile
    others = [p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0]
              not in (f"{folder.name}.ipynb", ".ipynb_checkpoints")] if folder.is_dir() else []
    if not others:
        return make()
    with tempfile.TemporaryDirectory(prefix="gocor-release-") as keep:
        for p in others:
            (Path(keep) / p.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, Path(keep) / p.relative_to(folder))
        try:
            return make()
        finally:
            for p in others:
                dest = folder / p.relative_to(folder)
                if not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(Path(keep) / p.relative_to(folder), dest)


def generate(root: str | Path = COURSE_DIR, assignments: list[str] | None = None,
             force: bool = False) -> Path:
    """``nbgrader generate_assignment`` for each assignment whose release is missing or older
    than its source (all with ``force``): students' versions in ``root/release/<assignment>/``,
    the graded cells in ``root/gradebook.db``. Returns ``root``."""
    from nbgrader.api import Gradebook, MissingEntry
    root = init_course(root)
    api = _api(root)
    for name in _names(root, assignments):
        src, rel = root / "source" / name / f"{name}.ipynb", root / "release" / name / f"{name}.ipynb"
        known = True
        if (root / "gradebook.db").exists():
            with Gradebook(api.coursedir.db_url) as gb:
                try:
                    gb.find_assignment(name)
                except MissingEntry:
                    known = False
        if force or not known or not rel.exists() or rel.stat().st_mtime < src.stat().st_mtime:
            result = _keeping_others(rel.parent, lambda: api.generate_assignment(name, force=True, create=True))
            if not result.get("success"):
                raise GradingError(f"nbgrader generate_assignment {name} failed:\n"
                                   f"{result.get('error', '')}\n{result.get('log', '')}")
    return root


# ---------------------------------------------------------------------------------------------
# submissions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """A submission (or a file or folder in ``submitted/``) that was not graded, and why."""
    student: str
    assignment: str
    problem: str


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), options, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def scan(folder: Path, names: list[str]) -> tuple[list[tuple[str, str, Path]], list[Problem]]:
    """The notebooks ``folder/<student>/<assignment>/<assignment>.ipynb`` of the assignments
    ``names`` and a :class:`Problem` for each unknown folder, missing or misnamed notebook."""
    found, problems = [], []
    if not folder.is_dir():
        return found, problems
    for student in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if not student.is_dir():
            problems.append(Problem(student.name, "", f"`{student.name}` is a file, not a student's folder"))
            continue
        if student.name in ASSIGNMENTS:     # laid out <assignment>/<student>/, or one student's folder
            problems.append(Problem(student.name, "", f"`{student.name}` is an assignment, not a student: "
                                    f"nothing in it was taken; the folder must hold "
                                    f"<student>/<assignment>/<assignment>.ipynb"))
            continue
        for entry in sorted(p for p in student.iterdir() if not p.name.startswith(".")):
            if entry.is_file() and entry.suffix == ".ipynb" and entry.stem in ASSIGNMENTS:
                problems.append(Problem(student.name, entry.stem, f"`{entry.name}` is not in a folder "
                                        f"`{entry.stem}/`: not graded; put it in "
                                        f"{student.name}/{entry.stem}/{entry.name}"))
                continue
            if not entry.is_dir() or entry.name not in ASSIGNMENTS:
                problems.append(Problem(student.name, entry.name, f"unknown {'folder' if entry.is_dir() else 'file'} "
                                        f"`{entry.name}`{_suggest(entry.name, list(ASSIGNMENTS))}: "
                                        f"not graded; assignments are {', '.join(ASSIGNMENTS)}"))
                continue
            if entry.name not in names:
                continue
            expected = f"{entry.name}.ipynb"
            others = sorted(p.name for p in entry.glob("*.ipynb") if p.name != expected)
            for other in others:
                problems.append(Problem(student.name, entry.name, f"notebook `{other}` is not part of "
                                        f"{entry.name}: not graded; the notebook must be named `{expected}`"))
            if (entry / expected).is_file():
                found.append((student.name, entry.name, entry / expected))
            elif not others:
                problems.append(Problem(student.name, entry.name, f"no `{expected}` in the folder: not graded"))
    return found, problems


def collect(incoming: str | Path, root: str | Path = COURSE_DIR,
            assignments: list[str] | None = None) -> list[Problem]:
    """Copy each ``incoming/<student>/<assignment>/<assignment>.ipynb`` (only the notebook, never
    other files) into ``root/submitted/``; returns the problems of :func:`scan`."""
    root = init_course(root)
    incoming = Path(incoming).resolve()
    if incoming == (root / "submitted").resolve():
        return []
    if not incoming.is_dir():
        raise FileNotFoundError(f"{incoming}: no such folder of submissions <student>/<assignment>/")
    found, problems = scan(incoming, _names(root, assignments))
    for student, name, path in found:
        dest = root / "submitted" / student / name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists() or dest.read_bytes() != path.read_bytes():
            # copied with the time of collection (not copy2): `grade` regrades a submission newer
            # than its autograded notebook, and a re-submission unpacked from a zip (or copied
            # with `cp -p`) keeps a time from before the last grading
            shutil.copyfile(path, dest.with_suffix(".tmp"))
            os.replace(dest.with_suffix(".tmp"), dest)
    return problems


# ---------------------------------------------------------------------------------------------
# grading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CellScore:
    """One graded cell of one submission."""
    grade_id: str
    kind: CellKind
    score: float
    max_score: float
    needs_manual_grade: bool


@dataclass(frozen=True)
class SubmissionScore:
    """One student's submission of one assignment, as nbgrader's gradebook holds it.
    ``score``/``max_score`` are nbgrader's totals (manually graded cells count 0 until graded,
    then their manual score); ``auto_*`` restrict them to the autograded cells."""
    student: str
    assignment: str
    score: float
    max_score: float
    auto_score: float
    auto_max_score: float
    needs_manual_grade: bool
    cells: list[CellScore] = field(default_factory=list)
    edited_locked_cells: list[str] = field(default_factory=list)
    """Locked cells (tests, setup) whose source in the submission differs from the release:
    nbgrader restored them before grading; a sign of tampering (or of an accident)."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Report:
    """What :func:`grade` did: the scores in the gradebook, who was (re)graded this time, what
    could not be graded, and the submissions whose kernel changed files outside their own
    folder (:func:`files_outside`)."""
    scores: list[SubmissionScore]
    graded: list[tuple[str, str]]
    problems: list[Problem]
    outside: list[Problem] = field(default_factory=list)


KIT_DIR = Path(__file__).resolve().parents[1]
"""The kit's package (``gocor/``): watched, with the course root, while a submission is graded."""
_VOLATILE = ("gradebook.db", "gradebook.db-journal", ".nbgrader.log")


def watched_files(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime in ns) of every file in the course root ``root`` (but the gradebook
    and nbgrader's log, which grading writes) and in the kit's package (``__pycache__`` aside)."""
    out: dict[str, tuple[int, int]] = {}
    for base in (Path(root), KIT_DIR):
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                path = os.path.join(dirpath, name)
                if base == Path(root) and dirpath == str(base) and name in _VOLATILE:
                    continue
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                out[path] = (st.st_size, st.st_mtime_ns)
    return out


def files_outside(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                  own: Path, root: Path) -> list[str]:
    """The files (:func:`watched_files`) created, changed or deleted between ``before`` and
    ``after``, outside the folder ``own`` (the submission's autograded folder, where its kernel
    runs): relative to ``root`` where they are in it."""
    own, root = Path(own).resolve(), Path(root).resolve()
    changed = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) == after.get(path) or Path(path).is_relative_to(own):
            continue
        changed.append(str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else path)
    return changed


def cell_kinds(assignment: str, root: str | Path = COURSE_DIR) -> dict[str, CellKind]:
    """grade_id -> "autograded" (a test cell) or "manual" (a graded answer), from the source."""
    import nbformat
    kinds: dict[str, CellKind] = {}
    for path in sorted((Path(root) / "source" / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                kinds[meta["grade_id"]] = "manual" if meta.get("solution") else "autograded"
    return kinds


def edited_locked_cells(submitted: Path, release: Path) -> list[str]:
    """grade ids of the release's locked cells that the submitted notebook changed or lost.
    (nbgrader's own log reports a checksum change on every test cell, as its gradebook holds
    the hidden tests; this compares with what the student was given.)"""
    import nbformat

    def locked(path: Path) -> dict[str, str]:
        cells = nbformat.read(path, as_version=4).cells
        return {c.metadata["nbgrader"]["grade_id"]: c.source for c in cells
                if c.metadata.get("nbgrader", {}).get("locked") and "grade_id" in c.metadata["nbgrader"]}
    try:
        given, got = locked(release), locked(submitted)
    except Exception:   # noqa: BLE001 (an unreadable notebook fails in autograde, with its own message)
        return []
    return sorted(gid for gid, source in given.items() if got.get(gid) != source)


def _failure(log: str) -> str:
    """One line from nbgrader's log on why a submission failed."""
    for needle, what in (("DeadKernelError", "the kernel died (out of memory? os._exit?)"),
                         ("UnresponsiveKernelError", "the kernel stopped responding (an infinite loop in C code?)"),
                         ("CellTimeoutError", "a cell ran past its time limit and could not be interrupted")):
        if needle in log:
            return f"{what}: not graded; see autograde's log with `nbgrader autograde` in the course root"
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Entry|Exit): ", ln)]
    return "autograde failed: " + ((errors or lines)[-1][:300] if lines else "no log")


def grade(root: str | Path = COURSE_DIR, assignments: list[str] | None = None,
          students: list[str] | None = None, timeout: float | None = None,
          regrade: bool = False) -> Report:
    """Autograde ``root/submitted/<student>/<assignment>/<assignment>.ipynb`` with nbgrader.

    Only submissions that are new or changed since they were last autograded run (all with
    ``regrade``); manual grades and every other entry of the gradebook stay. Each submission is
    graded alone: one that fails is listed in the report and the others are graded. Only the
    notebook is graded (in nbgrader's ``autograded/`` folder, without the files beside it).
    ``timeout`` replaces :data:`TIMEOUTS` (seconds per notebook)."""
    from nbgrader.api import Gradebook, MissingEntry
    root = generate(root, assignments)
    names = _names(root, assignments)
    found, problems = scan(root / "submitted", names)
    if students is not None:
        found = [f for f in found if f[0] in students]
        problems = [p for p in problems if p.student in students]
    graded: list[tuple[str, str]] = []
    outside: list[Problem] = []
    _Clock.override = timeout
    files = None
    try:
        for student, name, path in found:
            done = root / "autograded" / student / name / path.name
            if not regrade and done.exists() and done.stat().st_mtime >= path.stat().st_mtime:
                continue
            _Clock.start = None
            files = watched_files(root) if files is None else files
            result = _api(root, notebook=name).autograde(name, student, force=True, create=True)
            files, before = watched_files(root), files
            changed = files_outside(before, files, done.parent, root)
            if changed:
                shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
                outside.append(Problem(student, name, f"its kernel changed files outside its folder: {shown}. "
                                       f"Check them (`generate --force` rewrites the releases; a file "
                                       f"left in the course root makes the kit refuse it) and this "
                                       f"student's notebook; grades of this run may be affected"))
            if result.get("success"):
                graded.append((student, name))
            else:
                problems.append(Problem(student, name, _failure(f"{result.get('error', '')}\n{result.get('log', '')}")))
    finally:
        _Clock.override = None
    failed = {(p.student, p.assignment) for p in problems}
    scores = []
    with Gradebook(_api(root).coursedir.db_url) as gb:
        for student, name, path in found:
            if (student, name) in failed:
                continue
            try:
                sub = gb.find_submission(name, student)
            except MissingEntry:
                continue
            kinds = cell_kinds(name, root)
            cells = [CellScore(g.name, kinds.get(g.name, "autograded"), float(g.score), float(g.max_score),
                               bool(g.needs_manual_grade)) for nb in sub.notebooks for g in nb.grades]
            auto = [c for c in cells if c.kind == "autograded"]
            edited = edited_locked_cells(path, root / "release" / name / path.name)
            scores.append(SubmissionScore(student, name, float(sub.score), float(sub.max_score),
                                          sum(c.score for c in auto), sum(c.max_score for c in auto),
                                          bool(sub.needs_manual_grade), cells, edited))
    return Report(scores, graded, problems, outside)


def feedback(root: str | Path = COURSE_DIR, assignments: list[str] | None = None) -> list[Path]:
    """nbgrader's ``generate_feedback`` for every autograded submission: HTML in
    ``root/feedback/<student>/<assignment>/``, without the hidden tests (see
    ``HideHiddenTests``) and without the files the notebook wrote. Returns the HTML files."""
    root = check_root(root)
    out = []
    for name in _names(root, assignments):
        for done in sorted((root / "autograded").glob(f"*/{name}/{name}.ipynb")):
            student = done.parent.parent.name
            result = _api(root, notebook=name).generate_feedback(name, student, force=True)
            if not result.get("success"):
                raise GradingError(f"nbgrader generate_feedback {name} {student} failed:\n{result.get('log', '')}")
            out += sorted((root / "feedback" / student / name).glob("*.html"))
    return out


EXPORT_FIELDS = ("student", "assignment", "score", "max_score", "auto_score", "auto_max_score", "needs_manual_grade")


def export(root: str | Path = COURSE_DIR, to: str | Path | None = None) -> Path:
    """Every submission's scores from the gradebook as CSV (``root/grades.csv`` by default),
    one row per student and assignment: :data:`EXPORT_FIELDS`. Returns the file."""
    from nbgrader.api import Gradebook
    root = check_root(root)
    to = Path(to) if to is not None else root / "grades.csv"
    rows = []
    with Gradebook(_api(root).coursedir.db_url) as gb:
        for assignment in gb.assignments:
            kinds = cell_kinds(assignment.name, root)
            for sub in assignment.submissions:
                grades = [g for nb in sub.notebooks for g in nb.grades]
                auto = [g for g in grades if kinds.get(g.name, "autograded") == "autograded"]
                rows.append({"student": sub.student.id, "assignment": assignment.name,
                             "score": float(sub.score), "max_score": float(sub.max_score),
                             "auto_score": sum(float(g.score) for g in auto),
                             "auto_max_score": sum(float(g.max_score) for g in auto),
                             "needs_manual_grade": bool(sub.needs_manual_grade)})
    tmp = to.with_suffix(to.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["student"], r["assignment"])))
    os.replace(tmp, to)
    return to


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def format_table(report: Report) -> str:
    """Markdown: a row per submission (score / max, autograded part, manual grading pending,
    graded now or unchanged, locked cells the student edited), then a row per submission or file
    that was not graded."""
    graded = set(report.graded)
    rows = ["| student | assignment | score | max | autograded | manual grading pending | this run | locked cells edited |",
            "|---|---|---:|---:|---:|---|---|---|"] if report.scores or not report.problems else []
    for s in report.scores:
        rows.append(f"| {s.student} | {s.assignment} | {s.score:g} | {s.max_score:g} | "
                    f"{s.auto_score:g} / {s.auto_max_score:g} | {'yes' if s.needs_manual_grade else 'no'} | "
                    f"{'graded' if (s.student, s.assignment) in graded else 'unchanged'} | "
                    f"{', '.join(s.edited_locked_cells) or '-'} |")
    if report.problems:
        rows += ["", f"Not graded ({len(report.problems)}):", "",
                 "| student | assignment / file | problem |", "|---|---|---|"]
        rows += [f"| {p.student} | {p.assignment} | {p.problem} |" for p in report.problems]
    if report.outside:
        rows += ["", f"Wrote outside its folder ({len(report.outside)}):", "",
                 "| student | assignment | files |", "|---|---|---|"]
        rows += [f"| {p.student} | {p.assignment} | {p.problem} |" for p in report.outside]
    return "\n".join(rows).lstrip("\n")


def to_json(report: Report) -> str:
    """``{"scores": {student: {assignment: {score, max_score, ...}}}, "graded": [[student,
    assignment], ...], "problems": [{student, assignment, problem}, ...]}``."""
    scores: dict[str, dict[str, dict]] = {}
    for s in report.scores:
        d = s.to_dict()
        scores.setdefault(d.pop("student"), {})[d.pop("assignment")] = d
    return json.dumps({"scores": scores, "graded": [list(g) for g in report.graded],
                       "problems": [asdict(p) for p in report.problems],
                       "outside": [asdict(p) for p in report.outside]}, indent=1)


# ---------------------------------------------------------------------------------------------
# the `assignments` command
# ---------------------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    """``python -m gocor assignments {generate,collect,grade,feedback,export}``."""
    p = subparsers.add_parser("assignments", help="course assignments (nbgrader): release, collect, "
                              "autograde, feedback, export")
    a = p.add_subparsers(dest="action", required=True)
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", "--work", dest="course", default=str(COURSE_DIR),
                        help="the nbgrader course root (default: course/); a new or empty folder "
                             "becomes one; a folder holding anything else is refused")
    course.add_argument("--assignment", action="append", help="only this one (repeatable; default: all)")
    q = a.add_parser("generate", parents=[course], help="release: COURSE/release/<assignment>/ (nbgrader generate_assignment)")
    q.add_argument("--force", action="store_true", help="regenerate even when the release is up to date")
    q = a.add_parser("collect", parents=[course], help="copy DIR/<student>/<assignment>/<assignment>.ipynb into "
                                                     "COURSE/submitted/ (exit 1 if any notebook was not taken)")
    q.add_argument("dir", help="collected notebooks: DIR/<student>/<assignment>/<assignment>.ipynb")
    q = a.add_parser("grade", parents=[course], help="autograde new or changed submissions in "
                     "COURSE/submitted/ and print the scores (exit 1 if any could not be graded)")
    q.add_argument("dir", nargs="?", help="collect from this folder first (as `collect DIR`)")
    q.add_argument("--student", action="append", help="only this student (repeatable)")
    q.add_argument("--regrade", action="store_true", help="autograde every submission again "
                   "(manual grades stay; nbgrader marks them for review)")
    q.add_argument("--timeout", type=float, help="seconds per notebook for every assignment "
                   "(default: gocor.teach.assignments.TIMEOUTS)")
    q.add_argument("--json", action="store_true", help="print JSON: scores, graded, problems")
    a.add_parser("feedback", parents=[course], help="HTML feedback without hidden tests: COURSE/feedback/<student>/<assignment>/")
    q = a.add_parser("export", parents=[course], help="all scores as CSV (default COURSE/grades.csv)")
    q.add_argument("--to", help="the CSV file to write")
    p.set_defaults(fn=run)
    return p


def run(args: argparse.Namespace) -> None:
    """The ``assignments`` command; a refused course root or a bad argument exits with 2."""
    try:
        if args.action == "generate":
            print(f"student releases in {generate(args.course, args.assignment, force=args.force) / 'release'}")
        elif args.action == "collect":
            problems = collect(args.dir, args.course, args.assignment)
            print(format_table(Report([], [], problems)) if problems else "collected")
            if problems:                        # as grade: a notebook that was not taken exits 1
                sys.exit(1)
        elif args.action == "grade":
            early = collect(args.dir, args.course, args.assignment) if args.dir else []
            report = grade(args.course, args.assignment, args.student, args.timeout, args.regrade)
            report.problems[:0] = [p for p in early if p not in report.problems]
            print(to_json(report) if args.json else format_table(report))
            if report.problems or report.outside:
                sys.exit(1)
        elif args.action == "feedback":
            files = feedback(args.course, args.assignment)
            print(f"{len(files)} feedback files in {Path(args.course).resolve() / 'feedback'}")
        elif args.action == "export":
            print(f"scores written to {export(args.course, args.to)}")
    except (CourseRootError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
