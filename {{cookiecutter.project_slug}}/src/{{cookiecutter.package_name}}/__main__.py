"""Allow `python -m {{ cookiecutter.package_name }}`."""

from {{ cookiecutter.package_name }}.cli import app

app()
