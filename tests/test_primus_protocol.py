"""Unit tests of the pure Primus frame and primus-emitter packet codec."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_feathers.providers import _primus_protocol as pp


# -- control strings ---------------------------------------------------------

def test_control_frames_are_json_strings_with_quotes():
    assert pp.encode_ping(1795529598969) == '"primus::ping::1795529598969"'
    assert pp.encode_pong("1795529598969") == '"primus::pong::1795529598969"'
    assert pp.encode_id_request() == '"primus::id::"'
    assert pp.encode_id("abc-1") == '"primus::id::abc-1"'
    assert pp.encode_server_close() == '"primus::server::close"'


@pytest.mark.parametrize("value", [True, None, 1.5, b"1"])
def test_control_value_must_be_int_or_str(value):
    with pytest.raises(TypeError):
        pp.encode_ping(value)


@pytest.mark.parametrize("frame, expected", [
    ('"primus::ping::1795529598969"', pp.Ping("1795529598969")),
    ('"primus::pong::42"', pp.Pong("42")),
    ('"primus::ping::"', pp.Ping("")),
    ('"primus::id::"', pp.Id("")),
    ('"primus::id::spark-7"', pp.Id("spark-7")),
    ('"primus::server::close"', pp.ServerClose()),
])
def test_decode_control(frame, expected):
    assert pp.decode(frame) == expected


def test_id_request_flag():
    assert pp.decode('"primus::id::"').is_request
    assert not pp.decode('"primus::id::x"').is_request


def test_ping_value_is_echoed_exactly():
    ping = pp.decode(pp.encode_ping(1700000000123))
    assert pp.encode_pong(ping.value) == '"primus::pong::1700000000123"'


@pytest.mark.parametrize("text", [
    "primus::unknown::1", "primus::server::open", "primus::ping:1", "primus::", "hello",
    "primus:ping::1",
])
def test_other_strings_are_data(text):
    # Primus hands primus:: strings it does not know to the application.
    assert pp.decode(json.dumps(text)) == pp.Data(text)


def test_unquoted_control_string_is_invalid():
    # The quotes are part of the wire format.
    assert isinstance(pp.decode("primus::ping::1"), pp.Invalid)


# -- emitter packets ---------------------------------------------------------

def test_event_roundtrip():
    frame = pp.encode_event("todos created", [{"id": 1, "text": "ü"}])
    assert frame == '{"type":0,"data":["todos created",{"id":1,"text":"ü"}]}'
    assert pp.decode(frame) == pp.Event("todos created", ({"id": 1, "text": "ü"},), None)


def test_event_with_ack_roundtrip():
    frame = pp.encode_event("todos::create", [{"a": 1}, {}], ack_id=1)
    assert json.loads(frame) == {"type": 0, "data": ["todos::create", {"a": 1}, {}], "id": 1}
    assert pp.decode(frame) == pp.Event("todos::create", ({"a": 1}, {}), 1)


def test_ack_roundtrip():
    frame = pp.encode_ack(3, [None, [{"id": 0}]])
    assert frame == '{"type":1,"id":3,"data":[null,[{"id":0}]]}'
    assert pp.decode(frame) == pp.Ack(3, (None, [{"id": 0}]))


def test_event_without_args():
    assert pp.decode('{"type":0,"data":["ping me"]}') == pp.Event("ping me", (), None)


def test_null_id_means_no_ack():
    assert pp.decode('{"type":0,"data":["x"],"id":null}') == pp.Event("x", (), None)


def test_what_npm_primus_emitter_sends():
    # Bytes captured from primus-emitter 3.1.1's packet(): key order type, data, id.
    frame = '{"type":0,"data":["todos::create",{"description":"Do something"},{}],"id":1}'
    assert pp.decode(frame) == pp.Event("todos::create", ({"description": "Do something"}, {}), 1)


@pytest.mark.parametrize("bad_id", [
    0, -1, 1.5, 1.0, "1", True, False, [], {}, [1], 2 ** 53, 10 ** 30, '"x"' * 3,
])
def test_bad_event_ids_are_invalid(bad_id):
    frame = json.dumps({"type": 0, "data": ["x"], "id": bad_id})
    result = pp.decode(frame)
    assert isinstance(result, pp.Invalid), result
    assert "id" in result.reason


@pytest.mark.parametrize("bad_id", [None, 0, -5, 2.5, "7", True, {"a": 1}])
def test_bad_ack_ids_are_invalid(bad_id):
    packet = {"type": 1, "data": []}
    if bad_id is not None:
        packet["id"] = bad_id
    result = pp.decode(json.dumps(packet))
    assert isinstance(result, pp.Invalid)
    assert "id" in result.reason


def test_largest_safe_id_is_fine():
    assert pp.decode(pp.encode_ack(pp.MAX_ACK_ID)).ack_id == 2 ** 53 - 1


@pytest.mark.parametrize("data", ['"x"', "null", "{}", "1", '{"0": "x"}'])
def test_packet_data_must_be_a_list(data):
    for kind in (0, 1):
        result = pp.decode(f'{{"type":{kind},"id":1,"data":{data}}}')
        assert isinstance(result, pp.Invalid)
        assert "not a list" in result.reason


@pytest.mark.parametrize("data", ["[]", "[1]", "[null]", '[["a"]]', '[{"n":"a"}]'])
def test_event_name_must_be_a_string(data):
    result = pp.decode(f'{{"type":0,"data":{data}}}')
    assert isinstance(result, pp.Invalid)
    assert "name" in result.reason


@pytest.mark.parametrize("value", [
    {"type": 2, "data": ["x"]},
    {"type": "0", "data": ["x"]},
    {"type": True, "data": ["x"]},      # JSON true is not the number 1
    {"type": 0.0, "data": ["x"]},
    {"data": ["x"]},
    {"type": None},
    [0, ["x"]],
    42, None, 1.5, [], {},
])
def test_non_packets_are_data(value):
    assert pp.decode(json.dumps(value)) == pp.Data(value)


def test_reserved_spark_events():
    for name in ("data", "end", "error", "heartbeat", "readyStateChange",
                 "incoming::data", "outgoing::ping"):
        assert pp.is_reserved_event(name)
    for name in ("todos::create", "create", "open", "todos created"):
        assert not pp.is_reserved_event(name)


# -- bad input never raises --------------------------------------------------

@pytest.mark.parametrize("frame", [
    "", "{", "nul", "[1,]", "'x'", "NaN", "Infinity", "-Infinity", '{"type":0,"data":[NaN]}',
    "1" * 5000,   # beyond int()'s digit limit: ValueError, not JSONDecodeError
    '"\\ud800"',  # a lone surrogate is valid JSON, and plain data
])
def test_decode_bad_json(frame):
    result = pp.decode(frame)
    if frame == '"\\ud800"':
        assert result == pp.Data("\ud800")
    else:
        assert isinstance(result, pp.Invalid), result


@pytest.mark.parametrize("frame", [None, b'"primus::ping::1"', bytearray(b"[]"), 42])
def test_decode_non_text(frame):
    result = pp.decode(frame)
    assert isinstance(result, pp.Invalid)
    assert "text frame" in result.reason


def test_decode_huge_nesting():
    for frame in ("[" * 100_000, "[" * 100_000 + "]" * 100_000,
                  '{"type":0,"data":' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}"):
        result = pp.decode(frame)
        assert isinstance(result, pp.Invalid)
    assert "deep" in pp.decode("[" * 100_000 + "]" * 100_000).reason


def test_decode_deep_but_parseable_bad_id():
    # The id is nested just shallow enough to parse: reporting it must not blow up.
    frame = '{"type":1,"data":[],"id":' + "[" * 900 + "]" * 900 + "}"
    result = pp.decode(frame)
    assert isinstance(result, pp.Invalid)
    assert len(result.reason) < 100


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_decode_never_raises_on_any_text(text):
    result = pp.decode(text)
    assert isinstance(result, (pp.Ping, pp.Pong, pp.Id, pp.ServerClose, pp.Event, pp.Ack,
                               pp.Data, pp.Invalid))


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 60), 2 ** 60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    _json,
    st.fixed_dictionaries({"type": st.sampled_from([0, 1]), "data": _json},
                          optional={"id": _json}),
).map(json.dumps))
def test_decode_never_raises_on_json_shaped_text(text):
    assert pp.decode(text) is not None


@settings(max_examples=300, deadline=None)
@given(st.text(), st.lists(_json, max_size=4), st.none() | st.integers(1, pp.MAX_ACK_ID))
def test_event_encode_decode_roundtrip(name, args, ack_id):
    assert pp.decode(pp.encode_event(name, args, ack_id)) == pp.Event(name, tuple(args), ack_id)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, pp.MAX_ACK_ID), st.lists(_json, max_size=4))
def test_ack_encode_decode_roundtrip(ack_id, args):
    assert pp.decode(pp.encode_ack(ack_id, args)) == pp.Ack(ack_id, tuple(args))


@settings(max_examples=200, deadline=None)
@given(_json)
def test_data_roundtrip(value):
    result = pp.decode(pp.encode_data(value))
    if isinstance(value, str) and value.startswith(pp.PROTOCOL_PREFIX):
        return  # a control string written as data is read as control, as in Primus
    if isinstance(value, dict) and value.get("type") in (0, 1) and value.get("type") is not True \
            and value.get("type") is not False and not isinstance(value.get("type"), float):
        return  # looks like an emitter packet
    assert result == pp.Data(value)


# -- encoding ----------------------------------------------------------------

def test_encoding_is_compact_and_keeps_unicode():
    assert pp.encode_data({"a": [1, "é中"]}) == '{"a":[1,"é中"]}'


def test_lone_surrogate_is_escaped_so_utf8_can_carry_it():
    frame = pp.encode_data({"a": "\ud800é"})
    frame.encode("utf-8")
    assert json.loads(frame) == {"a": "\ud800é"}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_non_finite_numbers_refused(value):
    with pytest.raises(ValueError):
        pp.encode_data(value)


def test_unencodable_uses_default():
    import datetime
    day = datetime.date(2024, 1, 2)
    with pytest.raises(TypeError):
        pp.encode_event("x", [day])
    assert pp.encode_event("x", [day], default=str) == '{"type":0,"data":["x","2024-01-02"]}'
    assert pp.encode_ack(1, [None, day], default=str) == '{"type":1,"id":1,"data":[null,"2024-01-02"]}'


@pytest.mark.parametrize("ack_id", [0, -1, True, 1.0, "1", 2 ** 53])
def test_encoders_refuse_bad_ack_ids(ack_id):
    with pytest.raises(ValueError):
        pp.encode_ack(ack_id)
    with pytest.raises(ValueError):
        pp.encode_event("x", [], ack_id)


def test_event_name_must_be_str_when_encoding():
    with pytest.raises(TypeError):
        pp.encode_event(1, [])


def test_module_imports_no_io_libraries():
    # Loaded by file path: the package's __init__ may import Flask, this module must not.
    import subprocess
    import sys
    code = ("import importlib.util, sys;"
            f"spec = importlib.util.spec_from_file_location('pp', {pp.__file__!r});"
            "mod = sys.modules['pp'] = importlib.util.module_from_spec(spec);"
            "spec.loader.exec_module(mod);"
            "bad = {'flask', 'werkzeug', 'simple_websocket', 'socket', 'wsproto', 'flask_socketio'};"
            "print(sorted(bad & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
