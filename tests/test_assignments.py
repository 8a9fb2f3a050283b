"""The course (course/source, gocor.teach.assignments/checks/references) graded as an instructor
would: releases hide solutions and hidden tests; a persistent course root is graded
incrementally and nothing is deleted; a dead kernel, a misnamed file, an unknown folder and an
endless loop are listed while the others are graded; every listed cheat loses its points;
independently written solutions get full marks; one mistake costs one test cell.

One module fixture makes a course root and grades these students (one kernel per notebook):

- ``solution`` (the sources) and ``release`` (the student versions, unmodified), all four;
- ``cheat``: a1 (the kit's own ``distance_bins``; ``check_close`` rebound inside
  ``robust_activation`` and in the ``learned_labels`` cell; a 3 GiB allocation), a2 (the autograd
  oracle for the gradient, the solver's step for the per-image α, the per-filter α's sign
  flipped), a3 (``check_adjoint`` rebound, the kit's ``QueryPrior.adjoint``); its other cells are
  written independently (a1's ``reference_loss`` with ``bmm``/``cdist``, a3's with ``bmm``/``unfold``);
- ``other``: a1's ``distance_bins`` with ``torch.where``, and a test cell (locked) edited;
- ``offbyone``: a1 with the last distance bin off by one and, beside the notebook, a copy of
  ``gocor/`` patched to agree with it;
- ``dead`` (a1, the kernel exits), ``loop`` (a1, ``while True: pass``, graded with a 4 s budget),
  ``misnamed`` (``a1_objective (1).ipynb`` and a folder ``A1_objective``).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from gocor.teach import assignments as asg  # noqa: E402
from gocor.teach import checks  # noqa: E402
from gocor.tools.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Object of type")   # nbgrader's gradebook, harmless

SOURCE = asg.COURSE_DIR / "source"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
A1, A2, A3, A4 = asg.ASSIGNMENTS


def _nb(path: Path):
    return nbformat.read(path, as_version=4)


def _cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "grade_id" in c.metadata.get("nbgrader", {})}


def _student(releases: Path, name: str, **bodies: str):
    """What a student hands in: the release of ``name`` with the solutions written in, and the
    cells ``grade_id=source`` replaced."""
    nb = _nb(releases / name / f"{name}.ipynb")
    solutions = _cells(_nb(SOURCE / name / f"{name}.ipynb"))
    for gid, cell in _cells(nb).items():
        if cell.metadata["nbgrader"].get("solution"):
            cell.source = solutions[gid].source
        if gid in bodies:
            cell.source = bodies[gid].strip("\n")
    return nb


CHEAT_A1 = dict(
    distance_bins="""
def distance_bins(dist, num_bins, bin_displacement):
    import gocor.objective as k
    return k.distance_bins(dist, num_bins, bin_displacement)
""",
    robust_activation="""
def robust_activation(s, m):
    globals()["check_close"] = lambda *a, **k: None
    return s * 0
""",
    learned_labels="""
check_close = lambda *a, **k: None
def learned_labels(dist, theta_y, theta_plus, theta_m, bin_displacement):
    return dist, dist, dist
""",
    regularizer="""
def regularizer(w, filter_reg, min_filter_reg, scale):
    big = torch.empty(3 * 2**30, dtype=torch.uint8).fill_(1)   # 3 GiB, over the kernel's limit
    return 0.5 * max(filter_reg ** 2, min_filter_reg ** 2) * scale ** 2 * (w * w).flatten(1).sum(1)
""")
CHEAT_A2 = dict(
    gradient="""
def gradient(w, ref_feat, opt):
    from gocor.teach.references import autograd_gradient
    return autograd_gradient(opt, w, ref_feat)
""",
    step_length_per_image="""
def step_length_per_image(w, g, ref_feat, query_feat, opt):
    with torch.no_grad():
        w1 = opt(w, GlobalCorrelation(ref_feat), GlobalCorrelation(query_feat), num_iter=1)
    return ((w - w1) * g).sum((1, 2, 3), keepdim=True) / (g * g).sum((1, 2, 3), keepdim=True) / opt.log_step_length.exp()
""")
PLANTED = ("step_length_per_filter", "return num / den.clamp_min(1e-8)", "return -num / den.clamp_min(1e-8)")
CHEAT_A3 = dict(
    global_transpose="""
check_adjoint = lambda *a, **k: None
def global_transpose(feat, scores):
    return feat * 0
""",
    prior_adjoint="""
def prior_adjoint(R, out, query_size):
    return R.adjoint(out, query_size)
""")
OTHER_A1 = dict(
    distance_bins="""
def distance_bins(dist, num_bins, bin_displacement):
    n = torch.arange(num_bins, dtype=dist.dtype).view(-1, *([1] * dist.dim()))
    x = (dist / bin_displacement).unsqueeze(0)
    tri = torch.where((x - n).abs() < 1, 1 - (x - n).abs(), torch.zeros_like(x))
    last = torch.where(x >= num_bins - 1, torch.ones_like(x), tri)
    return torch.cat([tri[:-1], last[-1:]], 0)
""",
    reference_loss="""
def reference_loss(w, ref_feat, theta_y, theta_plus, theta_m, bin_displacement):
    b, c, h, wd = w.shape
    s = torch.bmm(ref_feat.flatten(2).transpose(1, 2), w.flatten(2))          # (B, q, p)
    grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(wd), indexing="ij"), -1).reshape(-1, 2).double()
    dist = torch.cdist(grid, grid)                                             # (q, p)
    y, v, m = learned_labels(dist, theta_y, theta_plus, theta_m, bin_displacement)
    r = v * robust_activation(s, m) - v * y
    return 0.5 * (r ** 2).sum((1, 2))
""")
OTHER_A3 = dict(
    global_apply="""
def global_apply(feat, w):
    b, c, h, wd = w.shape
    return torch.bmm(feat.flatten(2).transpose(1, 2), w.flatten(2)).view(b, -1, h, wd)
""",
    local_apply="""
def local_apply(feat, w, radius):
    b, c, h, wd = w.shape
    k = 2 * radius + 1
    patches = F.unfold(feat, k, padding=radius).view(b, c, k * k, h, wd)
    return (patches * w.unsqueeze(2)).sum(1) / c
""",
    local_transpose="""
def local_transpose(feat, scores, radius):
    b, c, h, wd = feat.shape
    k = 2 * radius + 1
    patches = F.unfold(feat, k, padding=radius).view(b, c, k * k, h, wd)
    return (patches * scores.unsqueeze(1)).sum(2) / c
""")
OFF_BY_ONE = ("rows.append((1.0 + x - (num_bins - 1)).clamp(0.0, 1.0))", "rows.append((1.0 + x - num_bins).clamp(0.0, 1.0))")


def _write(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _grade_json(*argv: str) -> tuple[int, dict]:
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out):
        try:
            main(["assignments", "grade", *argv, "--json"])
        except SystemExit as e:
            code = e.code
    return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("course")
    root = tmp / "root"
    releases = asg.generate(root) / "release"
    inbox = tmp / "inbox"
    for name in asg.ASSIGNMENTS:
        for student, src in (("solution", SOURCE), ("release", releases)):
            _write(_nb(src / name / f"{name}.ipynb"), inbox / student / name / f"{name}.ipynb")
    a2 = _student(releases, A2, **CHEAT_A2)
    cell = _cells(a2)[PLANTED[0]]
    cell.source = cell.source.replace(PLANTED[1], PLANTED[2])
    # the cheats' notebooks hold the independently written pieces too (graded cell by cell)
    cheat_a1 = _student(releases, A1, **CHEAT_A1, reference_loss=OTHER_A1["reference_loss"])
    for name, nb in ((A1, cheat_a1), (A2, a2), (A3, _student(releases, A3, **CHEAT_A3, **OTHER_A3))):
        _write(nb, inbox / "cheat" / name / f"{name}.ipynb")
    other = _student(releases, A1, distance_bins=OTHER_A1["distance_bins"])
    _cells(other)["test_regularizer"].source = 'print("regularizer: tests passed")'   # a locked cell edited
    _write(other, inbox / "other" / A1 / f"{A1}.ipynb")
    _write(_student(releases, A1, distance_bins="import os\nos._exit(1)"), inbox / "dead" / A1 / f"{A1}.ipynb")
    _write(_student(releases, A1, distance_bins="def distance_bins(dist, num_bins, bin_displacement):\n    while True:\n        pass"),
           inbox / "loop" / A1 / f"{A1}.ipynb")
    _write(_nb(SOURCE / A1 / f"{A1}.ipynb"), inbox / "misnamed" / A1 / f"{A1} (1).ipynb")
    (inbox / "misnamed" / "A1_objective").mkdir(parents=True)
    # nbgrader's own way of collecting: files straight into submitted/, here with a patched kit beside
    offbyone = root / "submitted" / "offbyone" / A1
    nb = _student(releases, A1)
    cell = _cells(nb)["distance_bins"]
    assert cell.source.count(OFF_BY_ONE[0]) == 1
    cell.source = cell.source.replace(*OFF_BY_ONE)
    _write(nb, offbyone / f"{A1}.ipynb")
    kit = Path(asg.__file__).resolve().parents[1]
    shutil.copytree(kit, offbyone / "gocor", ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    objective = offbyone / "gocor" / "objective.py"
    text = objective.read_text()
    assert text.count("(1.0 + x[0] - (num_bins - 1))") == 1
    objective.write_text(text.replace("(1.0 + x[0] - (num_bins - 1))", "(1.0 + x[0] - num_bins)"))

    t0 = time.perf_counter()
    code, first = _grade_json(str(inbox), "--course", str(root), "--student", "solution", "--student", "release",
                              "--student", "cheat", "--student", "other", "--student", "offbyone",
                              "--student", "dead", "--student", "misnamed")
    t1 = time.perf_counter()
    loop_code, loop = _grade_json("--course", str(root), "--student", "loop", "--timeout", "4")
    t2 = time.perf_counter()
    return {"root": root, "inbox": inbox, "releases": releases, "code": code, "report": first,
            "scores": {**first["scores"], **loop["scores"]}, "loop": loop, "loop_code": loop_code, "loop_seconds": t2 - t1,
            "grade_seconds": t1 - t0}


def _auto_cells(score: dict) -> dict[str, dict]:
    return {c["grade_id"]: c for c in score["cells"] if c["kind"] == "autograded"}


def _lost(course, student: str, name: str) -> dict[str, float]:
    """grade_id -> points lost, for the cells that lost any."""
    cells = _auto_cells(course["scores"][student][name])
    return {gid: c["max_score"] - c["score"] for gid, c in cells.items() if c["score"] < c["max_score"]}


def _errors(course, student: str, name: str) -> dict[str, str]:
    nb = _nb(course["root"] / "autograded" / student / name / f"{name}.ipynb")
    return {gid: " ".join(f"{o.ename}: {o.evalue}" for o in c.outputs if o.output_type == "error")
            for gid, c in _cells(nb).items() if c.cell_type == "code"}


# ---------------------------------------------------------------------------------------------
# the course
# ---------------------------------------------------------------------------------------------

def test_course_has_the_four_assignments():
    assert sorted(p.name for p in SOURCE.iterdir() if p.is_dir()) == sorted(asg.ASSIGNMENTS)
    for name in asg.ASSIGNMENTS:
        nb = _nb(SOURCE / name / f"{name}.ipynb")
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and params[0].metadata["nbgrader"]["locked"], name
        assert any(re.search(r'^NAME = ""\nCOLLABORATORS = ""$', c.source, flags=re.M) for c in nb.cells), name
        assert f"`{name}.ipynb`" in _cells(nb)["submission"].source
        kinds = asg.cell_kinds(name)
        assert "autograded" in kinds.values(), name
        for cell in nb.cells:
            meta = cell.metadata["nbgrader"]
            if meta["grade"] and not meta["solution"]:
                assert "### BEGIN HIDDEN TESTS" in cell.source, (name, meta["grade_id"])
                assert meta["locked"] and meta["points"] > 0
                # the checks come from the cell itself, never from names a solution cell can rebind
                assert "from gocor.teach.checks import" in cell.source, (name, meta["grade_id"])
        text = "\n".join(c.source for c in nb.cells)
        assert "SPEC.md" not in text and "def autograd_gradient" not in text and "def solver_alpha" not in text
    for name in (A2, A4):
        assert "manual" in asg.cell_kinds(name).values()
        assert "### BEGIN MARK SCHEME" in "\n".join(c.source for c in _nb(SOURCE / name / f"{name}.ipynb").cells)
    assert asg.check_root(asg.COURSE_DIR) == asg.COURSE_DIR    # course/ holds only what the kit owns


def _regions(source: str, begin: str, end: str) -> list[str]:
    return re.findall(rf"{re.escape(begin)}\n(.*?)\n[ \t]*{re.escape(end)}", source, flags=re.S)


def test_releases_hide_solutions_hidden_tests_and_rubrics(course):
    for name in asg.ASSIGNMENTS:
        src = _cells(_nb(SOURCE / name / f"{name}.ipynb"))
        rel = _cells(_nb(course["releases"] / name / f"{name}.ipynb"))
        assert src.keys() == rel.keys(), name
        text = "\n".join(c.source for c in rel.values())
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "MARK SCHEME"):
            assert marker not in text, (name, marker)
        assert "def autograd_gradient" not in text and "def solver_alpha" not in text   # no oracles shipped
        for gid, cell in src.items():
            meta = cell.metadata["nbgrader"]
            secret = _regions(cell.source, "### BEGIN SOLUTION", "### END SOLUTION") + \
                _regions(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS") + \
                _regions(cell.source, "### BEGIN MARK SCHEME", "### END MARK SCHEME")
            if meta["solution"] and cell.cell_type == "markdown":
                assert rel[gid].source == "YOUR ANSWER HERE", (name, gid)
                secret.append(cell.source)
            public = cell.source
            for block in secret:
                public = public.replace(block, "")
            lines = {ln.strip() for block in secret for ln in block.splitlines()}
            leaked = {ln for ln in lines if len(ln) > 12 and ln not in public and ln in rel[gid].source}
            assert not leaked, (name, gid, leaked)
            if meta["solution"] and cell.cell_type == "code":
                indent = re.search(r"^([ \t]*)### BEGIN SOLUTION", cell.source, flags=re.M).group(1)
                stub = "\n".join(indent + ln for ln in STUB.splitlines())
                assert rel[gid].source == re.sub(r"[ \t]*### BEGIN SOLUTION\n.*?### END SOLUTION",
                                                 lambda _: stub, cell.source, flags=re.S), (name, gid)


# ---------------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------------

def test_solutions_get_full_marks(course):
    scores = course["scores"]["solution"]
    assert sorted(scores) == sorted(asg.ASSIGNMENTS)
    for name, score in scores.items():
        assert score["auto_max_score"] > 0
        assert score["auto_score"] == score["auto_max_score"], (name, _errors(course, "solution", name))
        manual = score["max_score"] - score["auto_max_score"]
        assert score["needs_manual_grade"] == (manual > 0), name


def test_independently_written_solutions_get_full_marks(course):
    assert _lost(course, "other", A1) == {}, _errors(course, "other", A1)                  # torch.where
    cheat = {name: _auto_cells(course["scores"]["cheat"][name]) for name in (A1, A3)}
    assert cheat[A1]["test_reference_loss"]["score"] == 3                                 # bmm, cdist
    for gid in ("test_global_apply", "test_local_apply", "test_local_transpose"):         # bmm, unfold
        assert cheat[A3][gid]["score"] == cheat[A3][gid]["max_score"], gid


def test_unmodified_releases_get_zero_with_helpful_messages(course):
    scores = course["scores"]["release"]
    assert sorted(scores) == sorted(asg.ASSIGNMENTS)
    for name, score in scores.items():
        assert score["score"] == 0 and score["max_score"] == course["scores"]["solution"][name]["max_score"]
        assert all(c["score"] == 0 for c in score["cells"]), name
        assert not score["needs_manual_grade"], name   # unchanged answers get 0 without a grader
        errors = _errors(course, "release", name)
        for gid in _auto_cells(score):
            assert errors[gid].startswith("StudentCheckFailed: "), (name, gid, errors[gid])
            assert re.search(r"is still the stub|not found: implement|is not defined: run", errors[gid]), errors[gid]
    # a4's test_aepe has a test cell of its own: the stub is named, not train_variant
    assert "`test_aepe` is still the stub" in _errors(course, "release", A4)["test_test_aepe"]


def test_edited_locked_cells_are_restored_and_listed(course):
    # nbgrader restores the test cell (full marks on the real test) and the table names it
    assert _auto_cells(course["scores"]["other"][A1])["test_regularizer"]["score"] == 2
    assert "kit.regularizer(" in _cells(_nb(course["root"] / "autograded" / "other" / A1 / f"{A1}.ipynb"))["test_regularizer"].source
    assert course["scores"]["other"][A1]["edited_locked_cells"] == ["test_regularizer"]
    for student in ("release", "cheat", "offbyone", "loop"):
        assert all(s["edited_locked_cells"] == [] for s in course["scores"][student].values()), student


def test_one_mistake_costs_one_test_cell(course):
    # the last bin off by one: only the bins' test (2 points), not the later pieces that use them
    assert _lost(course, "offbyone", A1) == {"test_distance_bins": 2.0}


def test_a_patched_kit_beside_the_notebook_is_not_used(course):
    # offbyone's gocor/ copy agrees with the mistake; it is not in autograded/, so the kit decides
    assert (course["root"] / "submitted" / "offbyone" / A1 / "gocor").is_dir()
    assert sorted(p.name for p in (course["root"] / "autograded" / "offbyone" / A1).iterdir()) == [f"{A1}.ipynb"]
    assert "test_distance_bins" in _lost(course, "offbyone", A1)


def test_cheats_lose_their_points(course):
    errors = {name: _errors(course, "cheat", name) for name in (A1, A2, A3)}
    assert set(_lost(course, "cheat", A1)) == {"test_distance_bins", "test_robust_activation", "test_learned_labels",
                                              "test_regularizer"}
    assert "calls `gocor.objective.distance_bins`" in errors[A1]["test_distance_bins"]
    assert "changed `check_close`" in errors[A1]["test_robust_activation"]
    assert "learned_labels: y" in errors[A1]["test_learned_labels"]        # the rebinding had no effect
    assert set(_lost(course, "cheat", A2)) == {"test_gradient", "test_step_length_per_filter", "test_step_length_per_image"}
    assert "gocor.teach.references.autograd_gradient" in errors[A2]["test_gradient"]
    assert "calls `gocor.solver." in errors[A2]["test_step_length_per_image"]
    assert "larger than the exact step" not in errors[A2]["test_step_length_per_filter"]   # negative: smaller
    assert "smaller than the exact step" in errors[A2]["test_step_length_per_filter"]
    assert set(_lost(course, "cheat", A3)) == {"test_global_transpose", "test_prior_adjoint"}
    assert re.search(r"global_transpose: (expected a tensor of shape|adjoint identity fails)",
                     errors[A3]["test_global_transpose"])                            # the rebinding had no effect
    assert "calls `gocor.objective.QueryPrior.adjoint`" in errors[A3]["test_prior_adjoint"]


def test_the_grading_kernel_has_a_memory_limit(course):
    assert "can't allocate memory" in _errors(course, "cheat", A1)["test_regularizer"]


# ---------------------------------------------------------------------------------------------
# failures are listed, the others graded
# ---------------------------------------------------------------------------------------------

def test_a_dead_kernel_a_misnamed_file_and_an_unknown_folder_are_listed(course):
    assert course["code"] == 1
    problems = {(p["student"], p["assignment"]): p["problem"] for p in course["report"]["problems"]}
    assert "kernel died" in problems[("dead", A1)]
    assert f"`{A1} (1).ipynb` is not part of {A1}" in problems[("misnamed", A1)]
    assert "unknown folder `A1_objective` (did you mean `a1_objective`?)" in problems[("misnamed", "A1_objective")]
    assert "dead" not in course["scores"] and "misnamed" not in course["scores"]
    assert {"solution", "release", "cheat", "other", "offbyone"} <= set(course["scores"])
    table = asg.format_table(asg.Report([], [], [asg.Problem(**p) for p in course["report"]["problems"]]))
    assert "| dead | a1_objective | the kernel died" in table


def test_an_endless_loop_costs_its_cells_and_the_budget_only(course):
    assert course["loop_code"] == 0 and course["loop"]["graded"] == [["loop", A1]]
    assert course["loop_seconds"] < 60      # 4 s budget + a kernel; 300 s a cell before
    assert "test_distance_bins" in _lost(course, "loop", A1)
    assert re.search(r"KeyboardInterrupt|CellTimeoutError", _errors(course, "loop", A1)["test_distance_bins"])


# ---------------------------------------------------------------------------------------------
# one persistent course root: nothing deleted, manual grades kept, nbgrader's commands work on it
# ---------------------------------------------------------------------------------------------

def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def test_a_folder_the_kit_does_not_own_is_refused_untouched(course, tmp_path, capsys):
    # the old failure: --work pointed at the folder holding the submissions (and a gradebook)
    held = tmp_path / "held"
    shutil.copytree(course["inbox"] / "solution", held / "submitted" / "solution")
    (held / "gradebook.db").write_bytes(b"instructor's gradebook")
    (held / "notes.txt").write_text("mine")
    before = _tree(held)
    for argv in (["grade", "--work", str(held)], ["grade", str(course["inbox"]), "--course", str(held)],
                 ["generate", "--course", str(held)], ["feedback", "--course", str(held)]):
        with pytest.raises(SystemExit) as exc:
            main(["assignments", *argv])
        assert exc.value.code == 2, argv
        assert "notes.txt, which the kit did not create; nothing was changed" in capsys.readouterr().err
    (held / "notes.txt").unlink()     # no foreign file, but a config the kit did not write: refused too
    (held / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "grade", "--course", str(held)])
    assert exc.value.code == 2 and "no nbgrader_config.py written by the kit" in capsys.readouterr().err
    del before["notes.txt"]
    assert {k: v for k, v in _tree(held).items() if k != "nbgrader_config.py"} == before


def test_regrading_is_incremental_and_keeps_manual_grades(course):
    from nbgrader.api import Gradebook
    root = course["root"]
    db = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(db) as gb:
        grade = gb.find_grade("answer_coupling", A2, A2, "solution")
        grade.manual_score = 1.5
        gb.db.commit()
    (root / "feedback" / "kept.txt").parent.mkdir(exist_ok=True)
    (root / "feedback" / "kept.txt").write_text("feedback already handed out")
    before = _tree(root / "autograded")
    report = asg.grade(root, assignments=[A1], students=["solution", "cheat", "offbyone"])   # unchanged: no kernel
    assert report.graded == [] and _tree(root / "autograded") == before
    submitted = root / "submitted" / "solution" / A2 / f"{A2}.ipynb"
    os.utime(submitted, (time.time() + 5, time.time() + 5))      # the student handed in again
    report = asg.grade(root, assignments=[A2], students=["solution"])
    assert report.graded == [("solution", A2)]
    with Gradebook(db) as gb:
        assert gb.find_grade("answer_coupling", A2, A2, "solution").manual_score == 1.5
        assert gb.find_submission(A2, "solution").score == 9 + 1.5
        assert {a.name for a in gb.assignments} == set(asg.ASSIGNMENTS)
        assert len(gb.find_assignment(A4).submissions) == 2      # the other assignments' entries stay
    assert (root / "feedback" / "kept.txt").read_text() == "feedback already handed out"
    assert (root / "submitted" / "offbyone" / A1 / "gocor").is_dir()


def test_feedback_hides_the_hidden_tests_and_copies_no_checkpoint(course):
    root = course["root"]
    files = asg.feedback(root, [A1, A4])
    assert {f.parent.parent.name for f in files} >= {"solution", "release", "cheat", "offbyone"}
    for f in files:
        html = f.read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "manual_seed(7311)" not in html and "MARK SCHEME" not in html
    html = (root / "feedback" / "offbyone" / A1 / f"{A1}.html").read_text()
    assert "StudentCheckFailed: distance_bins: relative error" in html        # the failure's message stays
    assert (root / "autograded" / "solution" / A4 / "runs" / "corr" / "last.pt").is_file()
    assert not list((root / "feedback").rglob("*.pt"))


def test_export_agrees_with_nbgraders_exporter(course, tmp_path):
    import csv
    root = course["root"]
    path = asg.export(root)
    rows = list(csv.DictReader(path.open()))
    graded = {(student, name) for student, by_name in course["scores"].items() for name in by_name}
    assert graded <= {(r["student"], r["assignment"]) for r in rows}
    row = next(r for r in rows if r["student"] == "offbyone")
    assert float(row["score"]) == 8 and float(row["max_score"]) == 10
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin
    out = tmp_path / "nbgrader.csv"
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:     # what `nbgrader export` runs
        CsvExportPlugin(to=str(out)).export(gb)
    theirs = {(r["student_id"], r["assignment"]): float(r["score"]) for r in csv.DictReader(out.open())}
    for r in rows:
        assert theirs[(r["student"], r["assignment"])] == float(r["score"]), r


# ---------------------------------------------------------------------------------------------
# the checks on their own (no kernel)
# ---------------------------------------------------------------------------------------------

def test_check_helpers_fail_with_messages():
    import torch
    with pytest.raises(checks.StudentCheckFailed, match="shape"):
        checks.check_close("x", torch.zeros(2), torch.zeros(3))
    with pytest.raises(checks.StudentCheckFailed, match="relative error"):
        checks.check_close("x", torch.ones(3), torch.zeros(3))
    checks.check_close("x", torch.zeros(3) + 1e-12, torch.zeros(3))

    class Liar(torch.Tensor):
        pass
    with pytest.raises(checks.StudentCheckFailed, match="expected a torch.Tensor, got Liar"):
        checks.check_close("x", torch.zeros(3).as_subclass(Liar), torch.zeros(3))

    def stub():
        raise NotImplementedError()
    with pytest.raises(checks.StudentCheckFailed, match="`stub` is still the stub"):
        checks.attempt(stub)
    with pytest.raises(checks.StudentCheckFailed, match="finite"):
        checks.check_number("aepe", float("nan"), 0, 10)
    assert checks.check_number("aepe", torch.tensor(2.5), 0, 10) == 2.5


def test_attempt_blocks_the_kit_feeds_references_and_restores_what_it_changed():
    import torch
    import gocor.objective as objective
    alias = objective.distance_bins
    d = torch.linspace(0, 3, 7, dtype=torch.float64)

    def own(dist):
        return alias(dist, 4, 0.5)
    with pytest.raises(checks.StudentCheckFailed, match="calls `gocor.objective.distance_bins`"):
        checks.attempt(own, d, blocked=["gocor.objective"])
    assert torch.equal(alias(d, 4, 0.5), objective.distance_bins(d, 4, 0.5))     # restored afterwards

    def uses_piece(dist):
        return globals()["piece"](dist, 4, 0.5)
    got = checks.attempt(uses_piece, d, blocked=["gocor.objective"], feed={"piece": objective.distance_bins})
    assert torch.equal(got, objective.distance_bins(d, 4, 0.5)) and "piece" not in globals()

    def vjp(dist):
        x = dist.clone().requires_grad_(True)
        return torch.autograd.grad((x * x).sum(), x)[0]
    with pytest.raises(checks.StudentCheckFailed, match="calls `torch.autograd.grad`"):
        checks.attempt(vjp, d, blocked=checks.BLOCK_AUTOGRAD)
    assert torch.equal(checks.attempt(vjp, d), 2 * d)

    from gocor.correlation import GlobalCorrelation
    transpose = GlobalCorrelation(d.view(1, 1, 1, 7)).transpose
    with pytest.raises(checks.StudentCheckFailed, match="calls `gocor.correlation.GlobalCorrelation.transpose`"):
        checks.attempt(transpose, d.view(1, 7, 1, 1), blocked=["gocor.correlation"])

    def patches(dist):
        objective.robust_activation = lambda s, m: s
        return dist
    original = objective.robust_activation
    with pytest.raises(checks.StudentCheckFailed, match="changed `gocor.objective.robust_activation`"):
        checks.attempt(patches, d)
    assert objective.robust_activation is original


def test_grade_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "grade", "--assignment", "a9_nope", "--course", str(tmp_path / "c")])
    assert exc.value.code == 2 and "unknown assignment" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "collect", str(tmp_path / "missing"), "--course", str(tmp_path / "c")])
    assert exc.value.code == 2 and "no such folder" in capsys.readouterr().err


def test_collect_exits_1_when_a_notebook_is_not_taken(tmp_path, capsys):
    import nbformat
    inbox = tmp_path / "inbox" / "carol" / "a1_objective"
    inbox.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), inbox / "a1_objective (1).ipynb")
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "collect", str(tmp_path / "inbox"), "--course", str(tmp_path / "c")])
    assert exc.value.code == 1 and "carol" in capsys.readouterr().out
    assert not list(tmp_path.joinpath("c").rglob("*(1)*.ipynb"))         # the misnamed notebook was not taken
