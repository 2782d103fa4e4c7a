"""Command-line tools for backend teams."""
