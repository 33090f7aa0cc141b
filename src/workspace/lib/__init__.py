"""Pure helpers. Imports nothing from workspace."""
