"""fedapp: a Flower 1.42 app that trains PyTorch models federatedly (simulation and edge)."""
