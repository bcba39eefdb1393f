"""Test-suite root: puts test/ on sys.path, so shared helpers (language_data_dirs) import by name."""
