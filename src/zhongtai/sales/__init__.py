"""Sales: one order model for flash sales and reservation lotteries, its state machine and expiry,
payments through a provider interface, pickup at a store (就近提货) and settlement (结算清分)."""
