"""An HTTP operation declared once: route, operationId, OpenAPI entry and the JSON Schema of its
body, and the check of that body against that schema (compiled once, when the app is built)."""
import json
import re
from dataclasses import dataclass
from typing import Callable, Optional, Union

from jsonschema import Draft202012Validator

from ..errors import BadRequest, ValidationFailed
from .openapi_schemas import body as request_body

NO_BODY = "Request body required"


@dataclass(frozen=True)
class Operation:
    """One method on one path.

    :param method: the HTTP method (`GET` also answers `HEAD`).
    :param path: the Werkzeug rule (`/api/offsite/<target>/fetch`).
    :param view: `view(mc, request, **url_args) -> Response`; with a `body`, it reads the
        checked body with `http.read_body(request)` after its own authorisation.
    :param operation_id: what generated clients call it: add, never rename.
    :param doc: the OpenAPI operation (`openapi_schemas.operation`); None for a page (not API).
    :param body: the JSON Schema of its JSON body: documented as its `requestBody` and checked.
    :param no_body: the error for a missing or non-JSON body.
    :param plain_error: for an answer the contract fixes: a body that is not an object, or a
        problem with one of `plain_fields`, is this 400 error without `details` (a callable is
        given `mc`, once, when the app is built).
    :param ignore_unknown: fields the schema does not name pass unchecked instead of a 400
        (login: clients sent more than the two fields before the schema was checked).
    """
    method: str
    path: str
    view: Callable
    operation_id: Optional[str] = None
    doc: Optional[dict] = None
    body: Optional[dict] = None
    no_body: str = NO_BODY
    plain_error: Union[str, Callable, None] = None
    plain_fields: tuple = ()
    ignore_unknown: bool = False

    @property
    def openapi_path(self):
        """The path as OpenAPI writes it: Werkzeug's `<target>` is `{target}`."""
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.path)

    def document(self):
        """The OpenAPI operation object (a new dict, safe to change)."""
        op = {**self.doc, "operationId": self.operation_id}
        if self.body is not None:
            op["requestBody"] = request_body(self.body)
        return op


class BodyCheck:
    """An operation's body schema, compiled with the component schemas it refers to."""

    def __init__(self, operation, components, mc):
        self._validator = Draft202012Validator(
            {**operation.body, "components": {"schemas": components}})
        self.no_body = operation.no_body
        plain = operation.plain_error
        self._plain_error = plain(mc) if callable(plain) else plain
        self._plain_fields = operation.plain_fields
        self._ignore_unknown = operation.ignore_unknown

    def check(self, body):
        """`body` (parsed JSON) if the schema holds.

        :raises ValidationFailed: one `details` entry per problem, each naming its field.
        :raises BadRequest: the operation's `plain_error`, for the problems it covers.
        """
        problems = {}
        for path, message in _problems(self._validator.iter_errors(body), self._ignore_unknown):
            problems.setdefault(path, message)  # one problem per field: the first found
        if not problems:
            return body
        if self._plain_error and any(not path or path[0] in self._plain_fields
                                     for path in problems):
            raise BadRequest(self._plain_error)
        raise ValidationFailed([f"{_where(path)}: {message}" for path, message in problems.items()])


def _where(path):
    """`settings.general.site_name`, `items[2]`, or `body` for the body itself."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "body"


def _problems(errors, ignore_unknown=False):
    """`(path, message)` for each schema error; never the offending value itself."""
    for error in errors:
        path = tuple(error.absolute_path)
        if error.validator in ("oneOf", "anyOf"):
            yield from _branch_problems(error, ignore_unknown)
        elif error.validator == "required":
            yield from (((*path, key), "is required") for key in error.validator_value
                        if key not in error.instance)
        elif error.validator == "additionalProperties":
            if not ignore_unknown:
                known = error.schema.get("properties", {})
                yield from (((*path, key), "unknown field") for key in error.instance
                            if key not in known)
        else:
            yield path, _message(error, path)


def _branch_problems(error, ignore_unknown):
    """The problems of the branch the body most likely meant: the one with the fewest wrong
    discriminating fields (required ones, constants), then the fewest problems, then the first.
    When every branch only disagrees about one field's constant, say which values it may take."""
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    ranked = sorted(branches.items(), key=lambda item: (
        sum(e.validator in ("required", "const", "enum") for e in item[1]), len(item[1]),
        item[0]))
    if all(len(errs) == 1 and errs[0].validator == "const" for _, errs in ranked) and \
            len({tuple(errs[0].absolute_path) for _, errs in ranked}) == 1:
        first = ranked[0][1][0]
        allowed = " or ".join(json.dumps(errs[0].validator_value) for _, errs in
                              sorted(branches.items()))
        yield tuple(first.absolute_path), f"must be {allowed}"
        return
    yield from _problems(ranked[0][1], ignore_unknown)


_TYPES = {"string": "a string", "boolean": "true or false", "object": "a JSON object",
          "array": "a list", "integer": "a whole number", "number": "a number", "null": "null"}


def _message(error, path):
    """What the value must be, in words, from the keyword it broke."""
    keyword, value, schema = error.validator, error.validator_value, error.schema
    if keyword == "type":
        types = [value] if isinstance(value, str) else value
        said = " or ".join(_TYPES.get(t, t) for t in types)
        if not path and "object" in types and schema.get("required"):
            said += " with " + " and ".join(schema["required"])
        return f"must be {said}"
    if keyword == "const":
        return f"must be {json.dumps(value)}"
    if keyword == "enum":
        return "must be one of " + ", ".join(v if isinstance(v, str) else json.dumps(v)
                                             for v in value)
    if keyword == "pattern":
        described = schema.get("description")
        return (f"must be {described[0].lower()}{described[1:]}" if described
                else f"must match {value}")
    if keyword == "maxLength":
        return f"must be at most {value} characters"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if keyword == "minProperties":
        return "must not be empty" if value == 1 else f"must have at least {value} entries"
    if keyword in ("minimum", "maximum"):
        return f"must be {'at least' if keyword == 'minimum' else 'at most'} {value}"
    return "is not valid"


def compile_checks(operations, components, mc):
    """Endpoint -> `BodyCheck` of every operation that takes a JSON body."""
    return {endpoint: BodyCheck(op, components, mc) for endpoint, op in operations.items()
            if op.body is not None}
