"""fedapp's server strategies (Flower Message-API `Strategy` subclasses) and their math."""
