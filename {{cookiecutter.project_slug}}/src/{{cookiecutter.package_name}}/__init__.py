"""The project's pipeline, gate and registry commands; README.md says what it does."""

__version__ = "0.1.0"
