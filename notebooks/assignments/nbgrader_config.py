"""nbgrader settings for the course assignments (run nbgrader from this folder, or use
`python -m fomaml_utils.tools.course`)."""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it reads this file)

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "fomaml-notebooks"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# Each cell of a submission runs at most this long; a cell that runs longer is interrupted, gets
# zero points with "CellTimeoutError", and grading goes on with the next cell and the next student.
# The longest cell of a correct solution (assignment 3's meta-training check) takes about a minute.
c.Execute.timeout = 300
# What the released notebooks put where a solution was.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
