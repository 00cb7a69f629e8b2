"""The export's one error type: a problem the user can fix, said in one line."""

__all__ = ["ExportError"]


class ExportError(Exception):
    """Raised for bad input or a failed check; the CLI prints it and exits 2."""
