"""nbgrader settings of the GOCor course: this folder is a gocor course root (nbgrader's standard
layout: source/ tracked; release/, submitted/, autograded/, feedback/, gradebook.db made here).

nbgrader's own commands run from this folder (`cd course && nbgrader autograde a1_objective`),
`make formgrader` serves it, and `python -m gocor assignments ...` uses it by default; course
roots made elsewhere by `python -m gocor assignments --course DIR` load this file.
"""
from pathlib import Path

from gocor.teach.assignments import cell_timeout, kernel_arguments

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "gocor"
c.CourseDirectory.root = str(Path(__file__).resolve().parent)

# What replaces a solution region in the student version (nbgrader's default, spelled out:
# the tests recognise it).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grade the notebook only: nbgrader copies no other file of a submission into autograded/ (a
# patched gocor/ beside the notebook would shadow the kit) nor of autograded/ into feedback/
# (a4 writes its checkpoints there).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*"]

# Autograde restores the nbgrader metadata of every cell from the gradebook and puts back the
# locked or graded cells a student deleted (gocor.teach.assignments.RestoreCells), before
# nbgrader's own OverwriteCells restores the locked cells' sources.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "gocor.teach.assignments.RestoreCells",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Time and memory of the grading kernel: a budget per assignment for the whole notebook
# (gocor.teach.assignments.TIMEOUTS: 30 s for a1-a3, 300 s for a4, which trains), and a data
# limit (MEMORY_LIMIT, 2 GiB) past which an allocation fails in its cell.
c.Execute.timeout_func = cell_timeout
c.Execute.extra_arguments = kernel_arguments()

# The rubrics (### BEGIN MARK SCHEME) sit in the questions' locked cells: cut from the
# releases, shown to the grader in the formgrader.
c.ClearMarkScheme.enforce_metadata = False

# Feedback without the hidden tests' code (nbgrader shows them by default) nor the rubrics.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "gocor.teach.assignments.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
