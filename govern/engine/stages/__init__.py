"""One behaviour per stage kind, each in the module named after it."""
