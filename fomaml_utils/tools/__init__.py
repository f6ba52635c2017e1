"""tools layer of fomaml_utils."""
