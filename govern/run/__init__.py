"""Run one manifest on one task: items in parallel, results on disk as they finish."""
