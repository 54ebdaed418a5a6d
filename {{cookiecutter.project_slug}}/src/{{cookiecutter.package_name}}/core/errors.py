"""The one exception type a user is meant to read.

Anything raised as `PipelineError` is a problem with the user's input (params, data, a missing
earlier stage): the CLI prints its message without a traceback and exits non-zero. Anything
else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """A problem the user can fix; the message says what and how."""
