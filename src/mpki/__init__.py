"""mpki: a managed public-key infrastructure with the GB SMKI profile pack."""

__version__ = "0.1.0"
