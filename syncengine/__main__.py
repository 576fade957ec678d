"""`python -m syncengine` is the same as the `syncengine` console script."""

from syncengine.cli import main

if __name__ == "__main__":
    main()
