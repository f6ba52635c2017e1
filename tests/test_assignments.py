"""The course assignments under nbgrader: released versions hold no solution, solutions get full marks, blank
releases get zero with a message on every test, each classic loop bug costs exactly its own check, and a
submission that hangs or crashes costs its student the affected tests without stopping the batch.

Grading runs real nbgrader (generate_assignment, autograde) on a copy of ``notebooks/assignments``; it takes
several minutes, most of it assignment 3's meta-training check.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from fomaml_utils.tools import course
from fomaml_utils.tools.course import COURSE, SOLUTION_MARKERS, assignments, leaked_lines, solution_lines

ASSIGNMENTS = assignments()
A3 = "a3_meta_training_loop"

# Assignment 3's four classic loop bugs, each written into the solution by one substitution, and the one
# check that must take its points.
BUGS = {
    "model_never_changes": (
        "    params = dict(model.named_parameters())\n",
        "    model = copy.deepcopy(model)  # the gradients land in a copy\n"
        "    params = dict(model.named_parameters())\n",
        "check_meta_model_changes"),
    "no_zero_grad": ("    optimizer.zero_grad()\n", "", "check_gradients_reset"),
    "query_at_initial_weights": ("        loss = task_loss(model, adapted, query_x, query_y)\n",
                                 "        loss = task_loss(model, params, query_x, query_y)\n",
                                 "check_query_gradient_at_adapted_weights"),
    "shared_adapted_copy": (
        "        adapted = adapt(model, params, support_x, support_y, inner_lr=inner_lr, inner_steps=inner_steps)\n",
        "        params = adapt(model, params, support_x, support_y, inner_lr=inner_lr, inner_steps=inner_steps)\n"
        "        adapted = params\n",
        "check_tasks_adapted_from_theta"),
}


def _source(name: str) -> Path:
    return COURSE / "source" / name / f"{name}.ipynb"


def _with_code(notebook: Path, old: str, new: str, target: Path) -> None:
    """Copy ``notebook`` to ``target`` with ``old`` replaced by ``new`` in exactly one code cell."""
    nb = json.loads(notebook.read_text())
    hits = 0
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and old in text:
            cell["source"] = text.replace(old, new, 1)
            hits += 1
    assert hits == 1, f"{old!r} found in {hits} cells of {notebook.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(nb, indent=1))


def _course_copy(root: Path, names: list[str]) -> Path:
    """``root/course``: the course's nbgrader_config.py and the sources of ``names``, for nbgrader to write into."""
    home = root / "course"
    (home / "source").mkdir(parents=True)
    shutil.copy(COURSE / "nbgrader_config.py", home)
    for name in names:
        shutil.copytree(COURSE / "source" / name, home / "source" / name)
    return home


def _points(rows: list[course.GradeRow], student: str, assignment: str) -> dict[str, course.GradeRow]:
    return {r.test: r for r in rows if r.student == student and r.assignment == assignment}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A copy of the course, released, with submissions for every assignment graded in one batch."""
    root = tmp_path_factory.mktemp("course")
    home = _course_copy(root, ASSIGNMENTS)
    released = course.release(home)
    subs = root / "submissions"
    for name in ASSIGNMENTS:
        shutil.copy(_source(name), (subs / "solution" / name).mkdir(parents=True) or subs / "solution" / name)
        shutil.copy(home / "release" / name / f"{name}.ipynb",
                    (subs / "blank" / name).mkdir(parents=True) or subs / "blank" / name)
    # Assignment 3: one submission per classic bug.
    if A3 in ASSIGNMENTS:
        sol = _source(A3)
        for bug, (old, new, _) in BUGS.items():
            target = subs / f"bug_{bug}" / A3 / f"{A3}.ipynb"
            _with_code(sol, old, new, target)
            if bug == "model_never_changes":  # the buggy cell needs `copy`
                _with_code(target, "def fomaml_step(", "import copy\n\n\ndef fomaml_step(", target)
    csv_path = root / "grades.csv"
    rows = course.grade(subs, csv_path, course=home)
    return {"home": home, "released": released, "rows": rows, "csv": csv_path}


def test_assignments_are_found():
    assert ASSIGNMENTS == ["a1_maml_meta_gradient", "a2_fomaml_reptile", A3]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_source_notebook_is_clean_and_graded(name):
    nb = json.loads(_source(name).read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    ids = [c["id"] for c in nb["cells"]]
    assert len(ids) == len(set(ids)), "cell ids must be unique"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb["cells"] if c["cell_type"] == "code"), \
        "store the source notebook without outputs"
    first, last = "".join(nb["cells"][0]["source"]), "".join(nb["cells"][-1]["source"])
    assert re.match(r"# Assignment \d: ", first) and "## What you will learn" in first and "## How it is graded" in first
    assert last.startswith("## What you built")
    tests = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert tests and all(c["metadata"]["nbgrader"]["points"] > 0 for c in tests)
    assert all("".join(c["source"]).startswith("# Check") for c in tests), "a test cell opens with '# Check ...'"
    solutions = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
    assert solutions and all("### BEGIN SOLUTION" in "".join(c["source"]) for c in solutions)
    assert not re.search(r"/(work|home|root|tmp)/", json.dumps(nb)), "no absolute paths"


def test_released_notebooks_hold_no_solution_and_no_hidden_test(graded):
    assert [p.parent.name for p in graded["released"]] == ASSIGNMENTS
    for path in graded["released"]:
        nb = json.loads(path.read_text())
        text = "\n".join("".join(c["source"]) for c in nb["cells"])
        assert not [m for m in SOLUTION_MARKERS if m in text]
        assert solution_lines(_source(path.parent.name))
        assert not leaked_lines(_source(path.parent.name), path)
        assert "raise NotImplementedError()" in text


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_autogrades_to_full_marks(graded, name):
    rows = _points(graded["rows"], "solution", name)
    assert rows
    assert {t: (r.points, r.reason) for t, r in rows.items()} == {t: (r.max_points, "") for t, r in rows.items()}


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_blank_release_scores_zero_on_every_test_with_a_message(graded, name):
    rows = _points(graded["rows"], "blank", name)
    assert rows
    for test, row in rows.items():
        assert row.points == 0, f"{test} gives points to the unmodified release"
        assert row.reason.startswith("CheckFailed: ") and "not written yet" in row.reason, (test, row.reason)


@pytest.mark.parametrize("bug", BUGS)
def test_each_classic_bug_loses_exactly_the_points_of_its_check(graded, bug):
    rows = _points(graded["rows"], f"bug_{bug}", A3)
    target = BUGS[bug][2]
    lost = {t: r.max_points - r.points for t, r in rows.items() if r.points < r.max_points}
    assert lost == {target: rows[target].max_points}, {t: rows[t].reason for t in lost}
    assert rows[target].reason.startswith("CheckFailed: ") and "Look at Part 1" in rows[target].reason


def test_csv_has_a_row_per_student_assignment_and_test(graded):
    with open(graded["csv"], newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["student", "assignment", "test", "points", "max_points", "reason"]
    assert len(table) == len(graded["rows"])
    students = {r["student"] for r in table}
    assert {"solution", "blank"} <= students and len(students) == 2 + len(BUGS)


def test_a_hanging_or_crashing_submission_costs_only_its_own_tests(tmp_path):
    """One student's cell loops forever, another's kernel dies; both get 0 with a reason, the third full marks."""
    name = "a1_maml_meta_gradient"
    home = _course_copy(tmp_path, [name])
    subs = tmp_path / "submissions"
    sol = _source(name)
    shutil.copy(sol, (subs / "fine" / name).mkdir(parents=True) or subs / "fine" / name)
    _with_code(sol, "def central_differences(", "def central_differences(*args, **kwargs):\n    while True:\n"
               "        pass\n\n\ndef _unused(", subs / "hangs" / name / f"{name}.ipynb")
    _with_code(sol, "def meta_gradient_by_hand(", "import os\nos._exit(1)\n\n\ndef meta_gradient_by_hand(",
               subs / "crashes" / name / f"{name}.ipynb")
    rows = course.grade(subs, tmp_path / "grades.csv", course=home, timeout=30)
    fine, hangs, crashes = (_points(rows, s, name) for s in ("fine", "hangs", "crashes"))
    assert all(r.points == r.max_points for r in fine.values())
    timed_out = {t for t, r in hangs.items() if r.points == 0}
    assert timed_out and all(hangs[t].reason == "timed out: the cell ran longer than 30 s and was interrupted"
                             for t in timed_out)
    assert any(r.points == r.max_points for r in hangs.values()), "the cells that do not hang keep their points"
    assert all(r.points == 0 and r.reason == "not graded: the notebook could not be run to the end (DeadKernelError: "
               "Kernel died)" for r in crashes.values())


def test_grade_refuses_a_folder_without_submissions(tmp_path, capsys):
    assert course.main(["grade", str(tmp_path)]) == 1
    assert "no submissions in" in capsys.readouterr().err
    assert course.main(["grade", str(tmp_path / "missing")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_the_leak_check_counts_a_line_that_is_both_given_and_part_of_a_solution(tmp_path):
    def notebook(*sources: str) -> Path:
        path = tmp_path / f"nb{len(list(tmp_path.iterdir()))}.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": s} for s in sources]}))
        return path
    given = "params = dict(model.named_parameters())"
    source = notebook(given, f"def f():\n    ### BEGIN SOLUTION\n    {given}\n    return params\n    ### END SOLUTION")
    assert leaked_lines(source, notebook(given, "def f():\n    raise NotImplementedError()")) == []
    assert leaked_lines(source, notebook(given, f"def f():\n    {given}\n")) == [given]
