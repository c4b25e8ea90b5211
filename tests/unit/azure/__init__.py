"""Unit tests of the Azure package: settings, names, error mapping, credentials, client cache."""
