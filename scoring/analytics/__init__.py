"""What the studio measures of rubrics: near-duplicate criteria, diverse responses."""
