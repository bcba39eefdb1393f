"""Synthetic Common Voice corpus: espeak-ng speech of real CLDR words."""
