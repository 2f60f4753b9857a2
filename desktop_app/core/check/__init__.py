"""The consistency check: bucket vs catalog vs journal, every disagreement and its safe repair."""
