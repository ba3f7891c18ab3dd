"""Validation of a plugin's options (``backbone.options``, ``strategy.options``, ``data.task_options``)."""

from __future__ import annotations

from typing import Any

__all__ = ["option_problems"]


def option_problems(model: Any, options: dict[str, Any], key: str) -> list[str]:
    """Validate ``options`` against a plugin's pydantic options model; one message per problem."""
    if model is None:
        return []
    from pydantic import ValidationError

    from ._errors import suggest

    try:
        model.model_validate(options)
    except ValidationError as e:
        out = []
        for err in e.errors():
            name = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                valid = list(model.model_fields)
                out.append(f"{key}.{name}: unknown option.{suggest(str(err['loc'][-1]), valid)} "
                           f"Valid options: {', '.join(valid)}")
            else:
                out.append(f"{key}.{name}: {err['msg']}, got {err.get('input')!r}")
        return out
    return []
