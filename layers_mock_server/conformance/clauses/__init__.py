"""The contract's sections, one module each; `catalogue.py` puts them in reading order."""
