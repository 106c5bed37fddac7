"""mlsnn hw package."""
