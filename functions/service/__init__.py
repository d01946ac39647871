"""Use cases: each entry use case (intake, completion) decides in pure code and acts through ports."""
