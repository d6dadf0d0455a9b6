"""Running fedapp on Flower's simulation engine from the command line (`python -m sim`)."""
