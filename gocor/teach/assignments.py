"""Course assignments on top of the kit, autograded with nbgrader.

The solution notebooks live in ``course/source/<assignment>/<assignment>.ipynb`` (nbgrader's
``source/`` layout, with ``### BEGIN SOLUTION`` regions, visible and hidden tests and points per
cell); ``course/nbgrader_config.py`` holds the course's nbgrader settings. This module

- gives the notebooks' tests their checks (:func:`attempt`, :func:`check_close`, :func:`fail`):
  failures are :class:`StudentCheckFailed` with a message that says what to do next;
- generates the student releases (:func:`generate`, ``make assignments``) with nbgrader's
  ``generate_assignment``;
- autogrades a folder of submissions ``DIR/<student>/<assignment>/`` with nbgrader's
  ``autograde`` and reads the scores back from its gradebook (:func:`grade`,
  ``python -m gocor assignments grade DIR``).

Grading is nbgrader's: this module only lays out a course directory for it and reads the
gradebook. nbgrader is imported inside the functions that need it, so the notebooks' checks
import nothing but torch.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, get_args

import torch
from torch import Tensor

AssignmentName = Literal["a1_objective", "a2_solver_step", "a3_operators", "a4_ablation"]
ASSIGNMENTS: tuple[AssignmentName, ...] = get_args(AssignmentName)
CellKind = Literal["autograded", "manual"]

COURSE_DIR = Path(__file__).resolve().parents[2] / "course"
"""The course sources beside the package (``course/source``, ``course/nbgrader_config.py``)."""


# ---------------------------------------------------------------------------------------------
# checks used by the notebooks' test cells
# ---------------------------------------------------------------------------------------------

class StudentCheckFailed(AssertionError):
    """A test cell's check failed; the message tells the student what to look at."""


def fail(message: str) -> None:
    """Fail a test cell with ``message``."""
    raise StudentCheckFailed(message)


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the student's ``fn``; a stub (``NotImplementedError``) becomes a failure that says so."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        name = getattr(fn, "__name__", repr(fn))
        fail(f"`{name}` is still the stub: replace `raise NotImplementedError()` in its cell with "
             f"your implementation, run that cell, then run this test cell again.")


def check_close(name: str, got: Any, expected: Tensor, tol: float = 1e-10, hint: str = "") -> None:
    """Fail unless ``got`` is a tensor of ``expected``'s shape within ``tol`` (max abs error,
    relative to max(1, max |expected|)). The message names the quantity, the shapes or the
    error and where it is largest, and ``hint``."""
    hint = f" Hint: {hint}" if hint else ""
    if not isinstance(got, Tensor):
        fail(f"{name}: expected a torch.Tensor, got {type(got).__name__}.{hint}")
    if tuple(got.shape) != tuple(expected.shape):
        fail(f"{name}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}.{hint}")
    diff = (got.detach().to(expected.dtype) - expected.detach()).abs()
    if not torch.isfinite(diff).all():
        fail(f"{name}: contains NaN or inf.{hint}")
    scale = max(1.0, float(expected.detach().abs().max())) if expected.numel() else 1.0
    err = float(diff.max()) / scale if diff.numel() else 0.0
    if err > tol:
        where = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        fail(f"{name}: relative error {err:.3g} > {tol:g}, largest at index {where} "
             f"(got {float(got.flatten()[diff.argmax()]):.6g}, expected "
             f"{float(expected.flatten()[diff.argmax()]):.6g}).{hint}")


def check_number(name: str, value: Any, low: float, high: float) -> float:
    """Fail unless ``value`` is a finite real number in [low, high]; returns it as a float."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        fail(f"{name}: expected a number, got {type(value).__name__}.")
    if not math.isfinite(value) or not low <= value <= high:
        fail(f"{name} = {value!r} is not a finite number in [{low}, {high}]: check how you computed it.")
    return float(value)


# ---------------------------------------------------------------------------------------------
# generating releases and grading submissions with nbgrader
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
    ``score``/``max_score`` are nbgrader's totals (manually graded cells count 0 until graded);
    ``auto_*`` restrict them to the autograded cells."""
    student: str
    assignment: str
    score: float
    max_score: float
    auto_score: float
    auto_max_score: float
    needs_manual_grade: bool
    cells: list[CellScore] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class GradingError(RuntimeError):
    """nbgrader could not generate or autograde; the message carries its log."""


def _config(course: Path):
    from traitlets.config.loader import PyFileConfigLoader
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def _scripts_on_path() -> None:
    """nbgrader runs the ``alembic`` script from PATH (for its gradebook): make it this
    interpreter's, also when the venv is not activated (``.venv/bin/python -m ...``)."""
    scripts = sysconfig.get_path("scripts")
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, path]) if path else scripts


def _api(root: Path, course: Path, timeout: int | None = None):
    """nbgrader's API on a course directory ``root`` whose sources are ``course/source``."""
    _scripts_on_path()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    config = _config(course)
    if timeout is not None:
        config.Execute.timeout = timeout
    config.CourseDirectory.root = str(root.resolve())
    config.CourseDirectory.source_directory = str((course / "source").resolve())
    coursedir = CourseDirectory(config=config)
    return NbGraderAPI(coursedir=coursedir, config=config)


def _run(result: dict, what: str) -> None:
    if not result.get("success"):
        raise GradingError(f"nbgrader {what} failed:\n{result.get('error', '')}\n{result.get('log', '')}")


def _names(assignments: list[str] | None, course: Path) -> list[str]:
    found = sorted(p.name for p in (course / "source").iterdir() if p.is_dir())
    names = found if assignments is None else list(assignments)
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ValueError(f"unknown assignment(s) {unknown}; the course has {found}")
    return names


def generate(out: str | Path = "build/assignments", assignments: list[str] | None = None,
             course: str | Path = COURSE_DIR) -> Path:
    """``nbgrader generate_assignment`` for each assignment: the student versions land in
    ``out/release/<assignment>/`` and the graded cells in ``out/gradebook.db``. Returns ``out``."""
    out, course = Path(out), Path(course)
    out.mkdir(parents=True, exist_ok=True)
    api = _api(out, course)
    for name in _names(assignments, course):
        _run(api.generate_assignment(name, force=True, create=True), f"generate_assignment {name}")
    return out


def cell_kinds(assignment: str, course: str | Path = COURSE_DIR) -> dict[str, CellKind]:
    """grade_id -> "autograded" (a test cell) or "manual" (a graded answer), from the source."""
    import nbformat
    kinds: dict[str, CellKind] = {}
    for path in sorted((Path(course) / "source" / assignment).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                kinds[meta["grade_id"]] = "manual" if meta.get("solution") else "autograded"
    return kinds


def grade(submissions: str | Path, work: str | Path = "build/assignments/grading",
          assignments: list[str] | None = None, course: str | Path = COURSE_DIR,
          timeout: int | None = None) -> list[SubmissionScore]:
    """Autograde every ``submissions/<student>/<assignment>/`` (nbgrader's ``submitted/``
    layout) and return the scores. ``work`` becomes a fresh nbgrader course directory
    (gradebook, ``submitted/``, ``autograded/`` with the executed notebooks); ``timeout``
    overrides the per-cell time limit of ``course/nbgrader_config.py``."""
    from nbgrader.api import Gradebook
    submissions, work, course = Path(submissions), Path(work), Path(course)
    names = set(_names(assignments, course))
    todo = sorted((s.name, a.name) for s in submissions.iterdir() if s.is_dir()
                  for a in s.iterdir() if a.is_dir() and a.name in names)
    if not todo:
        raise FileNotFoundError(f"no submissions {submissions}/<student>/<assignment>/ for {sorted(names)}")
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(submissions, work / "submitted",
                    ignore=lambda d, files: [f for f in files if f == ".ipynb_checkpoints"])
    api = _api(work, course, timeout)
    for name in sorted({a for _, a in todo}):
        _run(api.generate_assignment(name, force=True, create=True), f"generate_assignment {name}")
    for student, name in todo:
        _run(api.autograde(name, student, force=True, create=True), f"autograde {name} {student}")
    scores = []
    with Gradebook(api.coursedir.db_url) as gb:
        for student, name in todo:
            kinds = cell_kinds(name, course)
            sub = gb.find_submission(name, student)
            cells = [CellScore(g.name, kinds[g.name], float(g.score), float(g.max_score), bool(g.needs_manual_grade))
                     for nb in sub.notebooks for g in nb.grades]
            auto = [c for c in cells if c.kind == "autograded"]
            scores.append(SubmissionScore(student, name, float(sub.score), float(sub.max_score),
                                          sum(c.score for c in auto), sum(c.max_score for c in auto),
                                          bool(sub.needs_manual_grade), cells))
    return scores


def format_table(scores: list[SubmissionScore]) -> str:
    """A markdown table: student, assignment, score / max, autograded part, manual grading pending."""
    rows = ["| student | assignment | score | max | autograded | manual grading pending |",
            "|---|---|---:|---:|---:|---|"]
    for s in scores:
        rows.append(f"| {s.student} | {s.assignment} | {s.score:g} | {s.max_score:g} | "
                    f"{s.auto_score:g} / {s.auto_max_score:g} | {'yes' if s.needs_manual_grade else 'no'} |")
    return "\n".join(rows)


def to_json(scores: list[SubmissionScore]) -> str:
    """``{student: {assignment: {score, max_score, auto_score, ...}}}`` as JSON."""
    out: dict[str, dict[str, dict]] = {}
    for s in scores:
        d = s.to_dict()
        out.setdefault(d.pop("student"), {})[d.pop("assignment")] = d
    return json.dumps(out, indent=1)
