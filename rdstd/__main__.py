"""``python -m rdstd`` runs the CLI."""

from rdstd.cli.app import main

main()
