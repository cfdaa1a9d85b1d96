"""Results on disk: run folders, the report and its statistics, figures, export."""
