"""algorithms layer of fomaml_utils."""
