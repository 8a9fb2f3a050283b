"""Cheap checks of the grading pipeline against what a student or an INBOX can do to it, without
running a grading kernel: a tampered notebook's nbgrader metadata and deleted cells are restored
before nbgrader's OverwriteCells (which otherwise stops or skips tests); a kernel that writes
outside its folder is reported; a re-submission with an old file time is regraded; autograde's
failure names its error; collect's report has no empty score table."""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

pytest.importorskip("nbgrader")

from gocor.teach import assignments as asg  # noqa: E402
from gocor.tools.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Object of type")   # nbgrader's gradebook, harmless

A1 = "a1_objective"


def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


@pytest.fixture(scope="module")
def a1_course(tmp_path_factory):
    """A course root with a1 generated (its gradebook): nbgrader's generate_assignment, no kernel."""
    return asg.generate(tmp_path_factory.mktemp("tamper") / "course", [A1])


def _sanitize(root: Path, nb, with_restore: bool = True):
    from nbgrader.preprocessors import CheckCellMetadata, OverwriteCells
    resources = {"nbgrader": {"notebook": A1, "assignment": A1, "student": "mallory",
                              "db_url": asg._api(root).coursedir.db_url}}
    steps = ([asg.RestoreCells()] if with_restore else []) + [OverwriteCells(), CheckCellMetadata()]
    for step in steps:
        nb, resources = step.preprocess(nb, resources)
    return nb


def _tampered(root: Path):
    nb = nbformat.read(root / "release" / A1 / f"{A1}.ipynb", as_version=4)
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if _gid(cell) == "test_robust_activation":
            continue                                                   # deleted
        if _gid(cell) == "test_learned_labels":                        # renamed, unlocked, emptied
            meta.update(grade_id="my_cell", grade=False, locked=False)
            cell.source = "pass"
        if _gid(cell) == "test_distance_bins":                         # edited, no longer graded
            meta.update(grade=False)
            cell.source = 'print("distance_bins: tests passed")'
        if _gid(cell) == "regularizer":                                # a solution cell worth 50
            meta.update(grade=True, points=50)
        cells.append(cell)
    nb.cells = cells
    return nb


def test_the_course_config_restores_cells_before_overwritecells(a1_course):
    steps = list(asg._api(a1_course).config.Autograde.sanitize_preprocessors)
    assert "gocor.teach.assignments.RestoreCells" in steps
    assert steps.index("gocor.teach.assignments.RestoreCells") < steps.index("nbgrader.preprocessors.OverwriteCells")


def test_nbgrader_alone_stops_on_tampered_metadata(a1_course):
    from nbgrader.api import MissingEntry      # a solution cell marked graded: "No such grade cell";
    with pytest.raises((MissingEntry, RuntimeError)):   # a test cell unmarked: "Inconsistent checksums"
        _sanitize(a1_course, _tampered(a1_course), with_restore=False)


def test_tampered_metadata_and_deleted_cells_are_restored_in_place(a1_course):
    from nbgrader.api import Gradebook
    release = nbformat.read(a1_course / "release" / A1 / f"{A1}.ipynb", as_version=4)
    with Gradebook(asg._api(a1_course).coursedir.db_url) as gb:
        snb = gb.find_notebook(A1, A1)
        known = {c.name for c in snb.source_cells}
        points = {c.name: float(c.max_score) for c in snb.grade_cells}
        sources = {c.name: c.source for c in snb.source_cells}
    nb = _sanitize(a1_course, _tampered(a1_course))
    assert [_gid(c) for c in nb.cells if _gid(c)] == [_gid(c) for c in release.cells if _gid(c) in known]
    cells = {_gid(c): c for c in nb.cells if _gid(c)}
    assert {g: c.metadata["nbgrader"].get("points") for g, c in cells.items() if c.metadata["nbgrader"]["grade"]} == points
    assert cells["regularizer"].metadata["nbgrader"]["solution"] and not cells["regularizer"].metadata["nbgrader"]["grade"]
    for gid in ("test_distance_bins", "test_robust_activation", "test_learned_labels"):
        assert cells[gid].metadata["nbgrader"]["locked"] and cells[gid].source == sources[gid]
        assert "BEGIN HIDDEN TESTS" in cells[gid].source                # the hidden tests run too
    assert any(c.source == "pass" and "nbgrader" not in c.metadata for c in nb.cells)  # the student's own cell
    nbformat.validate(nb)


def _fake_api(writes):
    class Api:
        def __init__(self, root, notebook=None):
            self.root = Path(root)
            self.coursedir = SimpleNamespace(db_url=f"sqlite:///{self.root / 'gradebook.db'}")

        def autograde(self, name, student, force=True, create=True):
            own = self.root / "autograded" / student / name
            (own / "runs").mkdir(parents=True, exist_ok=True)
            (own / f"{name}.ipynb").write_text("{}")
            (own / "runs" / "last.pt").write_text("own folder")              # allowed
            for rel in writes.get(student, []):
                (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.root / rel).write_text("x")
            return {"success": True}
    return Api


def test_a_kernel_that_writes_outside_its_folder_is_reported(tmp_path, monkeypatch, capsys):
    root = asg.init_course(tmp_path / "course")
    for student in ("alice", "mallory"):
        (root / "submitted" / student / A1).mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), root / "submitted" / student / A1 / f"{A1}.ipynb")
    writes = {"mallory": ["MALLORY.txt", f"release/{A1}/{A1}.ipynb", f"autograded/alice/{A1}/x.txt"]}
    monkeypatch.setattr(asg, "generate", lambda r, a=None, force=False: asg.init_course(r))
    monkeypatch.setattr(asg, "_api", _fake_api(writes))
    report = asg.grade(root, [A1])
    assert sorted(report.graded) == [("alice", A1), ("mallory", A1)]
    assert [(p.student, p.assignment) for p in report.outside] == [("mallory", A1)]
    for rel in writes["mallory"]:
        assert rel in report.outside[0].problem
    assert "last.pt" not in report.outside[0].problem
    assert "Wrote outside its folder (1)" in asg.format_table(report)
    (root / "MALLORY.txt").unlink()
    os.utime(root / "submitted" / "mallory" / A1 / f"{A1}.ipynb")      # a re-submission
    time.sleep(0.01)
    with pytest.raises(SystemExit) as exc:
        main(["assignments", "grade", "--course", str(root), "--assignment", A1, "--regrade"])
    assert exc.value.code == 1 and "Wrote outside its folder" in capsys.readouterr().out


def test_a_resubmission_with_an_old_file_time_is_regraded(tmp_path):
    root = asg.init_course(tmp_path / "course")
    inbox = tmp_path / "inbox" / "carol" / A1
    inbox.mkdir(parents=True)
    first = nbformat.v4.new_notebook()
    nbformat.write(first, inbox / f"{A1}.ipynb")
    assert asg.collect(tmp_path / "inbox", root) == []
    done = root / "autograded" / "carol" / A1 / f"{A1}.ipynb"          # graded after the first one
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    second = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(second, inbox / f"{A1}.ipynb")
    old = time.time() - 3600                                           # unpacked from a zip
    os.utime(inbox / f"{A1}.ipynb", (old, old))
    assert asg.collect(tmp_path / "inbox", root) == []
    submitted = root / "submitted" / "carol" / A1 / f"{A1}.ipynb"
    assert submitted.read_bytes() == (inbox / f"{A1}.ipynb").read_bytes()
    assert submitted.stat().st_mtime > done.stat().st_mtime           # so `grade` regrades it


def test_a_failed_autograde_names_its_error():
    log = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
           "    nbgrader.api.MissingEntry: No such grade cell: a1/a1/regularizer\n"
           "[AutogradeApp | ERROR] There was an error processing assignment 'a1' for student 'm'\n"
           "[AutogradeApp | ERROR] Please see the the above traceback for details on the specific errors\n")
    assert "No such grade cell: a1/a1/regularizer" in asg._failure(log)


def test_collect_lists_problems_without_an_empty_score_table(tmp_path, capsys):
    inbox = tmp_path / "inbox" / "carol" / A1
    inbox.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), inbox / f"{A1} (1).ipynb")
    with pytest.raises(SystemExit):
        main(["assignments", "collect", str(tmp_path / "inbox"), "--course", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert "| score |" not in out and out.startswith("Not graded (1)")


def test_a_wrong_inbox_layout_is_named(tmp_path):
    swapped = tmp_path / "swapped" / A1 / "carol"                  # <assignment>/<student>/
    swapped.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), swapped / f"{A1}.ipynb")
    flat = tmp_path / "flat" / "carol"                             # <student>/<assignment>.ipynb
    flat.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), flat / f"{A1}.ipynb")
    for inbox, needle in ((tmp_path / "swapped", "is an assignment, not a student"),
                          (tmp_path / "flat", f"put it in carol/{A1}/{A1}.ipynb")):
        problems = asg.collect(inbox, tmp_path / "course")
        assert len(problems) == 1 and needle in problems[0].problem, problems
    assert not (tmp_path / "course" / "submitted").exists()


def test_generate_keeps_the_instructors_files_in_a_release(tmp_path):
    root = asg.generate(tmp_path / "course", [A1])
    handout = root / "release" / A1 / "handout" / "notes.txt"
    handout.parent.mkdir()
    handout.write_text("the instructor's")
    asg.generate(root, [A1], force=True)                               # nbgrader deletes the folder
    assert handout.read_text() == "the instructor's"
    assert (root / "release" / A1 / f"{A1}.ipynb").is_file()
