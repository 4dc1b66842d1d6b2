"""The schema checks of the ready-made hooks validate_data and validate_query
(flask_feathers/_validation.py), with a pydantic model and a JSON Schema, over REST and Socket.IO."""
import pytest

from flask_feathers.testing import realtime_client


def test_validate_data_with_a_pydantic_model_coerces_and_names_bad_fields(app, api):
    from pydantic import BaseModel

    from flask_feathers.hooks import validate_data

    class TodoIn(BaseModel):
        text: str
        priority: int = 1

    api.service('todos').hooks(before={'create': validate_data(TodoIn)})
    good = app.test_client().post('/todos', json={'text': 'x', 'priority': '3'})
    assert good.status_code == 201 and good.get_json()['priority'] == 3
    bad = app.test_client().post('/todos', json={'priority': 'high'})
    assert bad.status_code == 400
    body = bad.get_json()
    assert body['name'] == 'BadRequest' and body['message'] == 'Invalid data'
    assert set(body['errors']) == {'text', 'priority'}
    with realtime_client(api) as client:
        err, result = client.call('todos', 'create', {'text': 5})
    assert result is None and err['code'] == 400 and set(err['errors']) == {'text'}


def test_validate_query_with_a_json_schema(app, api):
    from flask_feathers.hooks import validate_query

    schema = {'type': 'object', 'properties': {'done': {'enum': ['true', 'false']}},
              'additionalProperties': False}
    api.service('todos').hooks(before={'find': validate_query(schema)})
    assert app.test_client().get('/todos?done=true').status_code == 200
    bad = app.test_client().get('/todos?done=maybe&other=1')
    assert bad.status_code == 400
    assert bad.get_json()['message'] == 'Invalid query'
    assert set(bad.get_json()['errors']) == {'done', ''}


def test_validation_hooks_refuse_what_is_not_a_schema():
    from flask_feathers.hooks import validate_data, validate_query

    with pytest.raises(TypeError, match='pydantic model class or a JSON Schema dict'):
        validate_data('todo')
    with pytest.raises(ValueError, match='not a valid JSON Schema'):
        validate_query({'type': 'no-such-type'})
