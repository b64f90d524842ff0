"""The ``kvbackup`` command."""
