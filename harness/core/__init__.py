"""Core records: the typed run events, the journal of exchanges and the configuration (no internal imports)."""
