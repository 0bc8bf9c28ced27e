"""core/shapes.py: each shape redis-py gives a stream read or a scored range, on RESP2 and RESP3,
legacy and unified, bytes or str, comes out as one."""

from __future__ import annotations

import pytest

from luasched.core.shapes import scored, stream_entries

ENTRIES = [(b"1-0", {b"t": b"a", b"s": b"done"}), (b"2-0", {b"t": b"b", b"s": b"failed"})]
WANT = [("1-0", {"t": "a", "s": "done"}), ("2-0", {"t": "b", "s": "failed"})]


@pytest.mark.parametrize("reply", [
    [[b"g", ENTRIES]],                                           # RESP2 (redis-py's legacy shape)
    {b"g": [ENTRIES]},                                           # RESP3, legacy: entries wrapped in a list of one
    {b"g": ENTRIES},                                             # redis-py 8's unified shape
    {"g": [[["1-0", ["t", "a", "s", "done"]], ["2-0", ["t", "b", "s", "failed"]]]]},  # no callback, str
    [["g", [["1-0", ["t", "a", "s", "done"]], ["2-0", ["t", "b", "s", "failed"]]]]],
], ids=["resp2", "resp3", "unified", "raw-resp3", "raw-resp2"])
def test_every_xread_shape_gives_the_same_entries(reply):
    assert stream_entries(reply) == WANT


@pytest.mark.parametrize("reply", [None, [], {}, {b"g": [[]]}, {b"g": []}])
def test_an_empty_xread_gives_no_entries(reply):
    assert stream_entries(reply) == []


@pytest.mark.parametrize("reply", [
    [(b"a", 1.0), (b"b", 2.5)],          # RESP2
    [[b"a", 1.0], [b"b", 2.5]],          # RESP3
    [b"a", b"1", b"b", b"2.5"],          # flat, no callback
    [["a", 1], ["b", 2.5]],              # decode_responses, an integer score
], ids=["resp2", "resp3", "flat", "str"])
def test_every_withscores_shape_gives_member_score_pairs(reply):
    assert scored(reply) == [("a", 1.0), ("b", 2.5)]
    assert scored([]) == []
