"""Authenticity: the consumer's scan — Digital Link resolution, PIN verification and its verdict,
first/repeat checks, clone detection and the per-code scan history."""
