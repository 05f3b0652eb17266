"""The repeated Cournot market of the "Institutional AI" experiment (arXiv 2601.11369)."""
