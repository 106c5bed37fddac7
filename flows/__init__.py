"""mlsnn flows package."""
