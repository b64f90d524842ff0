"""``python -m kvbackup``: the ``kvbackup`` command."""

from .cli.main import main

main()
