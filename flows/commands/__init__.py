"""mlsnn flows/commands package."""
