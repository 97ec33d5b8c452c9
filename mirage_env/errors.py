"""The one error type: something the user can act on. The message says what went wrong, `fix`
(when it is not already in the message) what to do, `exit_code` how the CLI ends (1: it failed,
2: bad input, nothing was changed). The CLI catches it in one place and prints it without a
traceback; every other exception is a bug and keeps its traceback (in a crash log)."""

from __future__ import annotations

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


class MirageEnvError(Exception):
    exit_code = EXIT_FAILED

    def __init__(self, message: str = "", fix: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message, self.fix = message, fix
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\nFix: {self.fix}" if self.fix else text

    def render(self) -> str:
        """What the CLI prints."""
        return f"error: {self}"
