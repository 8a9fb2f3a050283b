"""nbgrader settings of the GOCor course (read by nbgrader and by gocor.teach.assignments).

Run nbgrader from this folder (`cd course && nbgrader ...`): the sources are course/source/,
everything generated goes to build/assignments/ (release/, submitted/, autograded/,
feedback/, gradebook.db). `make assignments` and `python -m gocor assignments` use the same
settings with their own course root.
"""
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)
HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "gocor"
c.CourseDirectory.root = str(HERE.parent / "build" / "assignments")
c.CourseDirectory.source_directory = str(HERE / "source")

# What replaces a solution region in the student version (nbgrader's default, spelled out:
# the tests recognise it).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Per-cell time limit while autograding: raised from nbgrader's 30 s because a4_ablation's
# cell trains two small matchers (about half a minute on a 2-core CPU).
c.Execute.timeout = 300
