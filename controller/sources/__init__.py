"""Build sources: git revisions and trees over HTTP(S)/SSH, and inline sources."""
