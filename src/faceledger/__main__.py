"""``python -m faceledger`` runs the command line."""

from faceledger.cli.app import main

main()
