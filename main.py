"""Cloud Functions source entry: re-exports the function targets, nothing else."""

from functions.targets import handle_completion, handle_event, reconcile

__all__ = ["handle_completion", "handle_event", "reconcile"]
