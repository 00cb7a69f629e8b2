"""The export's error types: a problem the user can fix, said in one line."""

__all__ = ["ExportError", "VerificationError"]


class ExportError(Exception):
    """Raised for bad input; the CLI prints it and exits 2."""

    exit_code = 2


class VerificationError(ExportError):
    """The artifact failed a check (parity, ops, warmup); the CLI prints it and exits 1."""

    exit_code = 1
