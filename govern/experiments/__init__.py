"""Batch experiments: grids of runs, their results store, statistics and report."""
