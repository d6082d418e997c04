"""Data: correlated attribute tables, base-data sources, correlated splits."""
