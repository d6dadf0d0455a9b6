"""Users' own models: put a module here and select its factory with `model = "usermodels.<module>:<factory>"`.

The FAB carries this folder (`fab-include` in pyproject.toml), so Flower installs it
beside fedapp wherever the ServerApp and the ClientApps run, in simulation and on edge
nodes alike. A factory takes the shape of one input and the number of outputs and
returns a `torch.nn.Module` (see `example.py` and docs/data.md).
"""
