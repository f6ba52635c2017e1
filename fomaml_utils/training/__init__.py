"""training layer of fomaml_utils."""
