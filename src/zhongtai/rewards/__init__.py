"""Rewards: rules, fee pools, exactly-once grants per code and party, risk holds, withdrawals and payouts."""
