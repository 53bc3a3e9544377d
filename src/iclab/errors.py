"""Errors that carry a message meant for the user.

Anything raised as :class:`UserError` (or a subclass) is printed by the CLI as one line,
``iclab: error: <message>``, with exit code 2 and no traceback. The message names the offending
field, file or value and says what is allowed.
"""


class UserError(Exception):
    """Bad input from the user: a config value, a CLI argument, a file or folder."""


class ConfigError(UserError):
    """A config field that is unknown, has the wrong type or an impossible value."""


class RunFolderError(UserError):
    """A run folder or checkpoint that is missing, incomplete or corrupt."""


class TrainingError(Exception):
    """Training cannot go on (for example a non-finite loss); the message says where and why."""
