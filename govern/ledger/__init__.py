"""The append-only, HMAC-chained governance ledger of a run, sealed with Ed25519."""
