"""Reservation lotteries (申购): sessions, per-store stock, entries, a committed and publicly
recomputable draw, wins with a payment deadline."""
