"""mlsnn sim package."""
