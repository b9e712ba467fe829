"""Build-side tooling of the course, run by the Makefile: the venv maker and stage timer, the notebook runner that
`make course` and the tests share, the course site's builder, and the JupyterLab launcher of `make lab`. Nothing
here is a test, and nothing here imports from tests/."""
