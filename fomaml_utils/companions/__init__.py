"""companions layer of fomaml_utils."""
