"""Consumer and channel mobile pages under `/h5`."""
