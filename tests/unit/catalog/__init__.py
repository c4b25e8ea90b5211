"""Tests of the catalog write-back: manifest edits, file selection, the plan command."""
