"""``python -m faceledger`` runs the command line."""

from faceledger.cli.app import main

if __name__ == "__main__":
    main()
