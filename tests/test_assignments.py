"""The course assignments (course/source, gocor.teach.assignments): releases generated with
nbgrader hide solutions and hidden tests; autograding gives full marks to the solutions, zero to
the unmodified releases, and takes exactly one cell's points for a planted mistake.

One module fixture generates the releases and autogrades three students through the CLI
(``python -m gocor assignments grade DIR --json``): ``solution`` (the sources), ``release``
(the student versions, unmodified) and ``planted`` (a2's solution with the step length's sign
flipped).
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader")

from gocor.teach import assignments as asg  # noqa: E402
from gocor.tools.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Object of type")   # nbgrader's gradebook, harmless

SOURCE = asg.COURSE_DIR / "source"
PLANTED = ("a2_solver_step", "test_step_length_per_filter",
           "return num / den.clamp_min(1e-8)", "return -num / den.clamp_min(1e-8)")
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def _nb(path: Path):
    return nbformat.read(path, as_version=4)


def _cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("course")
    releases = asg.generate(tmp / "generated") / "release"
    subs = tmp / "submitted"
    for name in asg.ASSIGNMENTS:
        for student, src in (("solution", SOURCE), ("release", releases)):
            shutil.copytree(src / name, subs / student / name)
    name, _, right, wrong = PLANTED
    nb_path = subs / "planted" / name / f"{name}.ipynb"
    nb_path.parent.mkdir(parents=True)
    text = (SOURCE / name / f"{name}.ipynb").read_text()
    assert text.count(json.dumps(right)[1:-1]) == 1
    nb_path.write_text(text.replace(json.dumps(right)[1:-1], json.dumps(wrong)[1:-1]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["assignments", "grade", str(subs), "--work", str(tmp / "grading"), "--json"])
    return {"releases": releases, "scores": json.loads(out.getvalue()), "autograded": tmp / "grading" / "autograded"}


def test_course_has_the_four_assignments():
    assert sorted(p.name for p in SOURCE.iterdir() if p.is_dir()) == sorted(asg.ASSIGNMENTS)
    for name in asg.ASSIGNMENTS:
        nb = _nb(SOURCE / name / f"{name}.ipynb")
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and params[0].metadata["nbgrader"]["locked"], name
        kinds = asg.cell_kinds(name)
        assert "autograded" in kinds.values(), name
        for cell in nb.cells:
            meta = cell.metadata["nbgrader"]
            if meta["grade"] and not meta["solution"]:
                assert "### BEGIN HIDDEN TESTS" in cell.source, (name, meta["grade_id"])
                assert meta["locked"] and meta["points"] > 0
    assert "manual" in asg.cell_kinds("a2_solver_step").values()
    assert "manual" in asg.cell_kinds("a4_ablation").values()


def _regions(source: str, begin: str, end: str) -> list[str]:
    return re.findall(rf"{re.escape(begin)}\n(.*?)\n[ \t]*{re.escape(end)}", source, flags=re.S)


def test_releases_hide_solutions_and_hidden_tests(course):
    for name in asg.ASSIGNMENTS:
        src = _cells(_nb(SOURCE / name / f"{name}.ipynb"))
        rel = _cells(_nb(course["releases"] / name / f"{name}.ipynb"))
        assert src.keys() == rel.keys(), name
        text = "\n".join(c.source for c in rel.values())
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, (name, marker)
        for gid, cell in src.items():
            meta = cell.metadata["nbgrader"]
            secret = _regions(cell.source, "### BEGIN SOLUTION", "### END SOLUTION") + \
                _regions(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
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
                assert stub in rel[gid].source, (name, gid)
                assert rel[gid].source == re.sub(r"[ \t]*### BEGIN SOLUTION\n.*?### END SOLUTION",
                                                 lambda _: stub, cell.source, flags=re.S), (name, gid)
            elif not meta["solution"]:
                assert rel[gid].source == re.sub(r"\n?### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", "\n",
                                                 cell.source, flags=re.S).strip("\n") or not secret, (name, gid)


def _auto_cells(score: dict) -> dict[str, dict]:
    return {c["grade_id"]: c for c in score["cells"] if c["kind"] == "autograded"}


def test_solutions_get_full_marks(course):
    scores = course["scores"]["solution"]
    assert sorted(scores) == sorted(asg.ASSIGNMENTS)
    for name, score in scores.items():
        assert score["auto_max_score"] > 0
        assert score["auto_score"] == score["auto_max_score"], (name, score)
        for gid, cell in _auto_cells(score).items():
            assert cell["score"] == cell["max_score"] > 0, (name, gid)
        manual = score["max_score"] - score["auto_max_score"]
        assert score["needs_manual_grade"] == (manual > 0), name


def test_unmodified_releases_get_zero(course):
    scores = course["scores"]["release"]
    assert sorted(scores) == sorted(asg.ASSIGNMENTS)
    for name, score in scores.items():
        assert score["score"] == 0 and score["max_score"] == course["scores"]["solution"][name]["max_score"]
        assert all(c["score"] == 0 for c in score["cells"]), name
        assert not score["needs_manual_grade"], name   # unchanged answers get 0 without a grader


def test_planted_mistake_loses_exactly_that_cell(course):
    name, gid = PLANTED[:2]
    planted, solution = course["scores"]["planted"][name], course["scores"]["solution"][name]
    lost = _auto_cells(solution)[gid]["max_score"]
    assert planted["auto_score"] == solution["auto_score"] - lost
    for cid, cell in _auto_cells(planted).items():
        assert cell["score"] == (0 if cid == gid else cell["max_score"]), cid


def test_visible_tests_fail_on_stubs_with_a_helpful_message(course):
    for name in asg.ASSIGNMENTS:
        nb = _nb(course["autograded"] / "release" / name / f"{name}.ipynb")
        for gid, cell in _cells(nb).items():
            if asg.cell_kinds(name).get(gid) != "autograded":
                continue
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert len(errors) == 1 and errors[0].ename == "StudentCheckFailed", (name, gid, cell.outputs)
            message = errors[0].evalue
            assert re.search(r"is still the stub|not found: implement|is not defined: run", message), message


def test_score_table_and_json_shape(course):
    flat = [asg.SubmissionScore(student, name, **{k: v for k, v in s.items() if k != "cells"})
            for student, by_name in course["scores"].items() for name, s in by_name.items()]
    table = asg.format_table(flat)
    assert table.count("\n") == len(flat) + 1
    assert "| planted | a2_solver_step |" in table
    back = json.loads(asg.to_json(flat))
    assert back["release"]["a1_objective"]["score"] == 0
    assert {"score", "max_score"} <= set(back["solution"]["a4_ablation"])


def test_check_helpers_fail_with_messages():
    import torch
    with pytest.raises(asg.StudentCheckFailed, match="shape"):
        asg.check_close("x", torch.zeros(2), torch.zeros(3))
    with pytest.raises(asg.StudentCheckFailed, match="relative error"):
        asg.check_close("x", torch.ones(3), torch.zeros(3))
    asg.check_close("x", torch.zeros(3) + 1e-12, torch.zeros(3))

    def stub():
        raise NotImplementedError()
    with pytest.raises(asg.StudentCheckFailed, match="`stub` is still the stub"):
        asg.attempt(stub)
    with pytest.raises(asg.StudentCheckFailed, match="finite"):
        asg.check_number("aepe", float("nan"), 0, 10)
    assert asg.check_number("aepe", torch.tensor(2.5), 0, 10) == 2.5


def test_grade_cli_errors_are_clear(tmp_path, capsys):
    (tmp_path / "alice" / "not_an_assignment").mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "grade", str(tmp_path), "--work", str(tmp_path / "work")])
    assert exc.value.code == 2 and "no submissions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "grade", str(tmp_path), "--assignment", "a9_nope", "--work", str(tmp_path / "work")])
    assert exc.value.code == 2 and "unknown assignment" in capsys.readouterr().err
