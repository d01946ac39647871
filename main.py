"""Cloud Functions source entry: re-exports the function targets, nothing else."""

from functions.targets import handle_completion, handle_event

__all__ = ["handle_completion", "handle_event"]
