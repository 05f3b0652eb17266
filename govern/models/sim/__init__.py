"""The offline simulator: a documented, seeded model of agent behaviour (README)."""
