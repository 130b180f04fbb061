"""Built-in jboat operators. Each module is one plugin, registered through the ``jboat``
entry-point group in ``pyproject.toml`` exactly like a third-party plugin. Importing these
modules does not import Jittor (operators import it when they compute)."""
