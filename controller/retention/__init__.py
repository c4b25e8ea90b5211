"""Registry retention: which images a RunnerImage may delete (policy, references: pure)."""
