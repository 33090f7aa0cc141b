"""Projects and the labeling workflow."""
