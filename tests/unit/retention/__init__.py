"""Registry retention: the policy and the references the catalog makes."""
