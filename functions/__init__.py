"""The service: function targets, dispatch, ledger, completion, results, settings, CLI."""
