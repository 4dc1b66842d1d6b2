import pytest

from flask_feathers import errors

TABLE = [
    ('BadRequest', 400, 'bad-request'), ('NotAuthenticated', 401, 'not-authenticated'),
    ('PaymentError', 402, 'payment-error'), ('Forbidden', 403, 'forbidden'),
    ('NotFound', 404, 'not-found'), ('MethodNotAllowed', 405, 'method-not-allowed'),
    ('NotAcceptable', 406, 'not-acceptable'), ('Timeout', 408, 'timeout'),
    ('Conflict', 409, 'conflict'), ('Gone', 410, 'gone'),
    ('LengthRequired', 411, 'length-required'), ('Unprocessable', 422, 'unprocessable'),
    ('TooManyRequests', 429, 'too-many-requests'), ('GeneralError', 500, 'general-error'),
    ('NotImplemented', 501, 'not-implemented'), ('BadGateway', 502, 'bad-gateway'),
    ('Unavailable', 503, 'unavailable'),
]


@pytest.mark.parametrize('name,code,class_name', TABLE)
def test_every_class_has_its_code_and_wire_dict(name, code, class_name):
    cls = getattr(errors, name)
    exc = cls('went wrong')
    assert isinstance(exc, errors.FeathersError)
    assert (exc.name, exc.code, exc.class_name) == (name, code, class_name)
    assert exc.to_dict() == {'name': name, 'message': 'went wrong', 'code': code,
                             'className': class_name}
    back = errors.convert(exc.to_dict())
    assert type(back) is cls and back.message == 'went wrong'


def test_data_and_errors_only_when_set():
    exc = errors.BadRequest('bad', data={'a': 1}, errors={'email': 'taken'})
    assert exc.to_dict()['data'] == {'a': 1}
    assert exc.to_dict()['errors'] == {'email': 'taken'}
    assert 'data' not in errors.BadRequest('x').to_dict()
    converted = errors.convert(exc.to_dict())
    assert converted.data == {'a': 1} and converted.errors == {'email': 'taken'}


def test_convert_falls_back_on_code_then_general_error():
    assert type(errors.convert({'code': 409, 'message': 'm'})) is errors.Conflict
    assert type(errors.convert({'name': 'Weird', 'message': 'm'})) is errors.GeneralError
    assert type(errors.convert('text')) is errors.GeneralError


def test_object_as_first_argument_like_feathers_js():
    exc = errors.Unprocessable({'message': 'invalid', 'errors': {'a': 'b'}, 'extra': 1})
    assert exc.message == 'invalid'
    assert exc.errors == {'a': 'b'}
    assert exc.data == {'extra': 1}


def test_other_exceptions_leave_as_general_error_without_internals(caplog):
    wire = errors.to_wire(KeyError('secret_column'))
    assert wire == {'name': 'GeneralError', 'message': errors.INTERNAL_ERROR_MESSAGE,
                    'code': 500, 'className': 'general-error'}
    assert 'secret_column' in caplog.text  # the traceback goes to the log
    assert 'secret_column' in errors.to_wire(KeyError('secret_column'), debug=True)['message']
