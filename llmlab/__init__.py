"""llmlab: a complete, hackable large-language-model lab."""

__version__ = "0.1.0"
