"""tl_toolkit's built-in plugins.

Each module exposes one plugin class and is declared as an entry point in the
project's ``pyproject.toml``; the core finds them through those entry points
exactly as it finds a third-party plugin, and never imports them by name.
"""
