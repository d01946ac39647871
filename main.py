"""Cloud Functions source entry: re-exports the function targets, nothing else."""

from functions.targets import handle_completion, handle_event, reconcile, status_page

__all__ = ["handle_completion", "handle_event", "reconcile", "status_page"]
