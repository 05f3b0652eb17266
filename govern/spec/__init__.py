"""The governance-graph language: models, loading with file:line errors, checks, drawing."""
