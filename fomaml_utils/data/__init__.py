"""data layer of fomaml_utils."""
