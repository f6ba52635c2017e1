"""The instructor's two commands for the course assignments, on top of nbgrader.

    python -m fomaml_utils.tools.course release                    # student versions -> notebooks/assignments/release/
    python -m fomaml_utils.tools.course grade SUBMISSIONS --csv grades.csv

``release`` runs nbgrader's ``generate_assignment`` for every assignment in ``notebooks/assignments/source/``
and checks that no released notebook contains a marker, or a line of solution or hidden-test code (more often
than the instructor's version shows it outside those regions). ``grade`` copies
``SUBMISSIONS/<student>/<assignment>/<assignment>.ipynb`` into the course's ``submitted/`` folder, runs
nbgrader's ``autograde`` (each cell interrupted after ``--timeout`` seconds), and writes one CSV row per
student, assignment and autograded test: points, maximum and, for a failed test, the reason (the check's
message, ``CellTimeoutError`` for a cell that ran too long, or why the submission could not be graded).
A submission that crashes or hangs costs that student the affected tests, never the rest of the batch.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "COURSE", "assignments", "release", "grade", "GradeRow", "read_grades", "solution_lines", "leaked_lines", "configured_timeout", "main",
]

COURSE = Path(__file__).resolve().parents[2] / "notebooks" / "assignments"
"""The nbgrader course folder: ``nbgrader_config.py``, ``source/`` (checked in), and what nbgrader writes."""

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def assignments(course: Path = COURSE) -> list[str]:
    """The assignment names: the folders of ``course/source`` that hold a notebook of the same name."""
    return sorted(p.name for p in (course / "source").iterdir() if (p / f"{p.name}.ipynb").is_file())


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs `alembic` from PATH: put this environment's scripts first.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True, env=env)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _code_lines(notebook: Path) -> tuple[Counter, Counter]:
    """The stripped code lines of ``notebook`` outside and inside the solution and hidden-test regions."""
    outside, inside = Counter(), Counter()
    for cell in _cells(notebook):
        if cell["cell_type"] != "code":
            continue
        region = False
        for line in "".join(cell["source"]).splitlines():
            stripped = line.strip()
            if stripped in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                region = True
            elif stripped in ("### END SOLUTION", "### END HIDDEN TESTS"):
                region = False
            else:
                (inside if region else outside)[stripped] += 1
    return outside, inside


def solution_lines(notebook: Path) -> set[str]:
    """The lines of code (not comments, not blank, longer than 12 characters) between the solution and
    hidden-test markers of a source notebook."""
    return {line for line in _code_lines(notebook)[1] if len(line) > 12 and not line.startswith("#")}


def leaked_lines(source: Path, released: Path) -> list[str]:
    """Solution or hidden-test lines of ``source`` that ``released`` holds more often than ``source`` holds them
    outside those regions (a line such as ``params = dict(model.named_parameters())`` may be both given and
    part of a solution)."""
    given = _code_lines(source)[0]
    shown = _code_lines(released)[0]
    return sorted(line for line in solution_lines(source) if shown[line] > given[line])


def release(course: Path = COURSE) -> list[Path]:
    """Generate the student version of every assignment; return their paths. Raises ``RuntimeError`` with
    nbgrader's message if it fails, or if a released notebook's code still holds a marker or a line of
    solution or hidden-test code."""
    released = []
    for name in assignments(course):
        done = _nbgrader(course, "generate_assignment", name, "--force")
        path = course / "release" / name / f"{name}.ipynb"
        if done.returncode != 0 or not path.is_file():
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{done.stdout}{done.stderr}")
        text = "\n".join("".join(c["source"]) for c in _cells(path))
        leaked = [m for m in SOLUTION_MARKERS if m in text]
        leaked += leaked_lines(course / "source" / name / f"{name}.ipynb", path)
        if leaked:
            raise RuntimeError(f"{path} still contains solution or hidden-test text: {leaked[:3]}")
        released.append(path)
    return released


@dataclass(frozen=True)
class GradeRow:
    """One autograded test of one student's submission."""

    student: str
    assignment: str
    test: str
    points: float
    max_points: float
    reason: str


def _test_cells(notebook: Path) -> list[tuple[str, float]]:
    return [(c["metadata"]["nbgrader"]["grade_id"], float(c["metadata"]["nbgrader"].get("points", 0)))
            for c in _cells(notebook)
            if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"]


def _reason(cell: dict, timeout: int) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            if output.get("ename") in ("KeyboardInterrupt", "CellTimeoutError"):
                return f"timed out: the cell ran longer than {timeout} s and was interrupted"
            message = " ".join(str(output.get("evalue", "")).split())
            return f"{output.get('ename', 'Error')}: {message}".rstrip(": ")
    return ""


def configured_timeout(course: Path = COURSE) -> int:
    """The per-cell time limit ``Execute.timeout`` set in the course's ``nbgrader_config.py``, in seconds."""
    found = re.search(r"^c\.Execute\.timeout\s*=\s*(\d+)", (course / "nbgrader_config.py").read_text(), re.M)
    if not found:
        raise RuntimeError(f"{course / 'nbgrader_config.py'} does not set c.Execute.timeout")
    return int(found.group(1))


def read_grades(course: Path, assignment: str, students: list[str], notes: dict[str, str],
                timeout: int) -> list[GradeRow]:
    """The points of every autograded test of ``assignment`` for each of ``students``, from nbgrader's gradebook;
    a student whose submission was not graded gets 0 for every test, with ``notes[student]`` as the reason."""
    from nbgrader.api import Gradebook, MissingEntry

    tests = _test_cells(course / "source" / assignment / f"{assignment}.ipynb")
    rows = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for student in students:
            graded = course / "autograded" / student / assignment / f"{assignment}.ipynb"
            cells = {c["metadata"].get("nbgrader", {}).get("grade_id"): c for c in _cells(graded)} if graded.is_file() else {}
            for test, max_points in tests:
                if student in notes:  # nbgrader may have recorded a submission it then failed to grade
                    rows.append(GradeRow(student, assignment, test, 0.0, max_points, notes[student]))
                    continue
                try:
                    grade = gradebook.find_grade(test, assignment, assignment, student)
                    points = float(grade.score)
                except MissingEntry:
                    rows.append(GradeRow(student, assignment, test, 0.0, max_points, "not graded: no autograded notebook"))
                    continue
                reason = _reason(cells[test], timeout) if points < max_points and test in cells else ""
                rows.append(GradeRow(student, assignment, test, points, max_points, reason))
    return rows


def grade(submissions: Path, csv_path: Path, *, course: Path = COURSE, timeout: int | None = None) -> list[GradeRow]:
    """Autograde every ``submissions/<student>/<assignment>/<assignment>.ipynb`` and write ``csv_path``
    (columns student, assignment, test, points, max_points, reason). Returns the rows."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise ValueError(f"{submissions} is not a folder; it should hold <student>/<assignment>/<assignment>.ipynb")
    known = assignments(course)
    found: dict[str, list[str]] = {}
    for notebook in sorted(submissions.glob("*/*/*.ipynb")):
        student, assignment = notebook.parent.parent.name, notebook.parent.name
        if assignment in known and notebook.name == f"{assignment}.ipynb":
            found.setdefault(assignment, []).append(student)
    if not found:
        raise ValueError(f"no submissions in {submissions}: expected <student>/<assignment>/<assignment>.ipynb "
                         f"with <assignment> one of {', '.join(known)}")
    release(course)  # records the assignments and their tests in the gradebook
    rows: list[GradeRow] = []
    extra = [] if timeout is None else [f"--Execute.timeout={timeout}"]
    for assignment, students in found.items():
        notes = {}
        for student in students:
            target = course / "submitted" / student / assignment
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(submissions / student / assignment, target)
            start = time.perf_counter()
            done = _nbgrader(course, "autograde", assignment, "--force", f"--student={student}", *extra)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                # The exception that stopped the notebook, e.g. "nbclient.exceptions.DeadKernelError: Kernel died".
                errors = re.findall(r"^\s*([\w.]*(?:Error|Exception)\b.*?)\s*$", done.stdout + done.stderr, re.M)
                cause = errors[-1].split(".")[-1] if errors else "see nbgrader's log"
                notes[student] = f"not graded: the notebook could not be run to the end ({cause})"
            print(f"graded {student} / {assignment} in {seconds:.0f} s" + (f": {notes[student]}" if student in notes else ""),
                  flush=True)
        rows += read_grades(course, assignment, students, notes, timeout or configured_timeout(course))
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "test", "points", "max_points", "reason"])
        for r in rows:
            writer.writerow([r.student, r.assignment, r.test, f"{r.points:g}", f"{r.max_points:g}", r.reason])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fomaml_utils.tools.course", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("release", help="generate the student versions into notebooks/assignments/release/")
    g = sub.add_parser("grade", help="autograde a folder of submissions and write a CSV of points per student and test")
    g.add_argument("submissions", type=Path, help="folder holding <student>/<assignment>/<assignment>.ipynb")
    g.add_argument("--csv", type=Path, default=Path("grades.csv"), help="where to write the CSV (default: grades.csv)")
    g.add_argument("--timeout", type=int, default=None,
                   help="seconds a cell may run before it is interrupted and scores 0 (default: nbgrader_config.py's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            for path in release():
                print(f"released {path.relative_to(COURSE.parent.parent)}")
        else:
            rows = grade(args.submissions, args.csv, timeout=args.timeout)
            totals: dict[tuple[str, str], list[float]] = {}
            for r in rows:
                t = totals.setdefault((r.student, r.assignment), [0.0, 0.0])
                t[0] += r.points
                t[1] += r.max_points
            for (student, assignment), (points, most) in totals.items():
                print(f"{student} / {assignment}: {points:g} of {most:g} points")
            print(f"wrote {args.csv}")
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
