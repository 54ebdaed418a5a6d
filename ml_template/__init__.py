"""The template's own logic, importable: answer validation and the Jinja extension that runs it.

cookiecutter puts the template directory on sys.path while it bakes (for `_extensions`), and the
tests put it there through pytest's `pythonpath`, so both use this code unrendered.
"""
