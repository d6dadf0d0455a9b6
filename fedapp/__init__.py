"""fedapp: a Flower 1.41 app that trains PyTorch models federatedly (simulation and edge)."""
