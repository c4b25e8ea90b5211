"""Catalog write-back: pure YAML edits of environment definitions, and (elsewhere) git I/O."""
