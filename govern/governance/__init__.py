"""The Oracle computes evidence; the Controller moves the run and keeps the agent-state ladder."""
