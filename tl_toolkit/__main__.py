"""``python -m tl_toolkit`` is the ``tl`` command (and what ``accelerate launch -m tl_toolkit`` runs)."""

from tl_toolkit._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
