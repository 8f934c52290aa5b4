"""``bounds.raw_json_storable``: the run fast path skips the bounds check of a body's
decoded values when its bytes show there is nothing to find. It must never say "storable"
for a text whose decoded value :func:`bounds.json_problem` refuses."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from graphdock.bounds import MAX_JSON_DEPTH, json_problem, raw_json_storable


def _decoded(text: bytes):
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


@pytest.mark.parametrize(
    "text",
    [
        b'{"input": {"s": "a\\u0000b"}}',
        b'{"input": {"a\\u0000": 1}}',
        b'{"input": 9223372036854775808}',
        b'{"input": 18446744073709551615}',
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
    ],
)
def test_texts_json_problem_refuses_are_never_judged_storable(text: bytes) -> None:
    ok, value = _decoded(text)
    assert ok and json_problem(value) is not None
    assert not raw_json_storable(text)


@pytest.mark.parametrize("text", [b'{"input": "\\ud800"}', b'{"input": "\\uDFFF x"}'])
def test_lone_surrogate_escapes_are_looked_at_if_decoded(text: bytes) -> None:
    assert not raw_json_storable(text)  # (orjson refuses them too)


@pytest.mark.parametrize(
    "text",
    [b'{"assistant_id": "a", "input": {"n": 1}}', b'{"s": "caf\\u00e9 \\ud7ff"}', b'{"n": 922337203685477580}'],
)
def test_ordinary_bodies_are_judged_from_their_bytes(text: bytes) -> None:
    assert raw_json_storable(text)


_text = st.text(alphabet=st.sampled_from(["a", "\x00", "\ud800", "\udfff", "é", "\\", "u", "0", "[", "{"]), max_size=6)
_leaf = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False), _text,
    st.integers(min_value=-(2**64), max_value=2**64),
)
_value = st.recursive(
    _leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=12
)


def _nested(value, depth: int):
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=400, deadline=None)
@given(value=_value, depth=st.integers(min_value=0, max_value=MAX_JSON_DEPTH + 2), ascii=st.booleans())
def test_never_storable_when_json_problem_finds_something(value, depth: int, ascii: bool) -> None:
    text = json.dumps(_nested(value, depth), ensure_ascii=ascii).encode("utf-8", "surrogatepass")
    ok, decoded = _decoded(text)
    if ok and raw_json_storable(text):
        assert json_problem(decoded) is None, text[:200]
