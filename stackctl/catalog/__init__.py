"""What a model is: specs and their schema, versions, the checks before archiving, the archives,
in-process runs."""
