"""Members: real-name verification of consumer accounts (eligibility for age-restricted sales)."""
