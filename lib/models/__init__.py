"""Neural networks used by the studies (one architecture per module)."""
