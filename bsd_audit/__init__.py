"""bsd-audit: audit an image dataset for backdoor poisoning with BSD (Bi-perspective Splitting Defense)."""

__version__ = "0.1.0"
