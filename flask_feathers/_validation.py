"""Schema checks for the ready-made hooks ``validate_data`` and ``validate_query``.

A schema is a pydantic model class (the value becomes the model's ``model_dump()``, coerced and
with defaults) or a JSON Schema dict (the value is kept as it is). A failure is a BadRequest whose
``errors`` maps each bad field (dotted path, ``''`` for the whole value) to its message. pydantic
and jsonschema are imported only when such a schema is given (the ``schema`` extra).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from . import errors

#: ``check(value, message)``: the value to use, or a BadRequest with ``message``.
Check = Callable[[Any, str], Any]


def validator(schema: Any, name: str) -> Check:
    """The check for ``schema``; ``name`` (the hook's) goes into the misuse messages.

    :raises TypeError: ``schema`` is neither a pydantic model class nor a dict.
    :raises ValueError: the dict is not a valid JSON Schema.
    """
    if isinstance(schema, Mapping):
        return _json_schema(schema, name)
    validate = getattr(schema, 'model_validate', None)
    if not isinstance(schema, type) or validate is None:
        raise TypeError(f'{name}() takes a pydantic model class or a JSON Schema dict, got '
                        f'{schema!r}')
    from pydantic import ValidationError

    def check_model(value: Any, message: str) -> Any:
        try:
            return validate(value).model_dump()
        except ValidationError as exc:
            problems = {'.'.join(str(p) for p in error['loc']): error['msg']
                        for error in exc.errors()}
            raise errors.BadRequest(message, errors=problems) from None
    return check_model


def _json_schema(schema: Any, name: str) -> Check:
    # Any: jsonschema reads any Mapping; its stubs ask for a dict
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the extra is missing
        raise ImportError(f'{name}() with a JSON Schema needs jsonschema: pip install '
                          f'"flask-feathers[schema]" (from a checkout: pip install '
                          f'".[schema]")') from None
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f'{name}(): not a valid JSON Schema: {exc.message}') from None
    checker = validator_class(schema)

    def check_json(value: Any, message: str) -> Any:
        problems = {'.'.join(str(p) for p in error.absolute_path): error.message
                    for error in checker.iter_errors(value)}
        if problems:
            raise errors.BadRequest(message, errors=problems)
        return value
    return check_json
