"""Double-entry ledger: accounts, balanced journal entries, atomic balances with floors. See docs/ledger.md."""
