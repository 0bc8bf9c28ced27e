"""lua/lib/routing.lua's requires_met is the twin of kinds.satisfies: on the embedded server and on
a real one, both give the same answer for the same labels and conditions, on a fixed table of
tricky cases and on random ones."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luasched import scripts
from luasched.core import kinds

# ARGV[1] a kind's definition (its labels are its "l"), ARGV[2] encoded requires ('' for none)
SCRIPT = scripts.build("""--[[ requires_met_test: requires_met of a definition's labels and encoded requires.
  Includes: routing
]]
local labels = cjson.decode(ARGV[1])['l']
local conds = {}
if ARGV[2] ~= '' then
  conds = cjson.decode(ARGV[2])
end
if requires_met(labels, conds) then
  return 1
end
return 0
""", "tests/requires_met_test.lua")


@pytest.fixture
def client(make_client):
    """A client to this test's server; it only sends EVAL, which writes nothing, so one serves
    every example of a property test."""
    return make_client()


def lua_met(client, labels_json: str, requires_text: str) -> bool:
    got = client.eval(SCRIPT, 0, labels_json, requires_text)
    assert got in (0, 1), got
    return got == 1


def agree(client, labels: dict, conds: tuple) -> bool:
    """Python's answer, after asserting the Lua twin gives the same one."""
    want = kinds.satisfies(labels, conds)
    got = lua_met(client, kinds.definition(["t"], labels), kinds.encode_requires(conds))
    assert got is want, (labels, conds)
    return want


def test_the_script_sends_routing_alone():
    assert SCRIPT.startswith("-- lib/routing\n")
    assert "local function requires_met(labels, conds)" in SCRIPT
    assert "-- lib/util" not in SCRIPT


LABELS = {"gpu": "a100", "vram_gb": 80, "ratio": 0.5, "zone": "80", "big": 2**53, "neg": -3, "third": 1 / 3,
          "tiny": 1e-7, "empty": ""}

CASES = [
    {},
    {"gpu": "a100"}, {"gpu": "A100"}, {"gpu": ("==", "a100")}, {"gpu": ("!=", "a100")}, {"gpu": ("!=", "t4")},
    {"vram_gb": 80}, {"vram_gb": 80.0}, {"vram_gb": "80"}, {"vram_gb": ("!=", "80")}, {"vram_gb": ("!=", 80.0)},
    {"zone": 80}, {"zone": "80"}, {"zone": ("!=", 80)}, {"zone": (">=", 0)}, {"zone": ("<", 100)},
    {"gpu": (">", -(2**53))}, {"gpu": ("<=", 2**53)},
    {"ratio": 0.5}, {"ratio": ("<", 1)}, {"ratio": (">", 0.4999999999999999)}, {"ratio": ("<", 0.5000000000000001)},
    {"big": 2**53}, {"big": float(2**53)}, {"big": 2**53 - 1}, {"big": (">", 2**53 - 1)}, {"big": (">=", 2**53)},
    {"neg": (">", -4)}, {"neg": ("<", -3)}, {"neg": ("<=", -3.0)}, {"neg": -3},
    {"third": 1 / 3}, {"third": (">", 0.3333333333333333)}, {"third": ("<", 0.33333333333333337)},
    {"tiny": 1e-7}, {"tiny": (">", 0)}, {"tiny": ("<", 1e-7)},
    {"empty": ""}, {"empty": True}, {"empty": ("!=", "")}, {"empty": (">=", 0)},
    {"gpu": True}, {"ssd": True},
    {"ssd": "x"}, {"ssd": ("==", 1)}, {"ssd": ("!=", "x")}, {"ssd": ("!=", 0)},
    {"ssd": (">=", 0)}, {"ssd": (">", 0)}, {"ssd": ("<=", 0)}, {"ssd": ("<", 0)},
    {"gpu": "a100", "vram_gb": (">=", 40), "zone": True},
    {"gpu": "a100", "vram_gb": (">=", 40), "ssd": True},
    {"gpu": ("!=", "t4"), "ssd": ("!=", "x"), "neg": ("<", 0), "big": (">", 0)},
]


@pytest.mark.parametrize("requires", CASES, ids=lambda r: json.dumps(r) if r else "none")
def test_the_twins_agree_on_tricky_cases(client, requires):
    conds = kinds.check_requires(requires)
    agree(client, LABELS, conds)
    agree(client, {}, conds)
    agree(client, {"only": 1}, conds)


def test_the_table_has_both_answers(client):
    answers = [agree(client, LABELS, kinds.check_requires(r)) for r in CASES]
    assert 15 < answers.count(True) < len(answers) - 15


def test_labels_decoded_from_an_empty_array_or_object(client):
    for text in ('{"l":[],"n":[]}', '{"l":{},"n":[]}'):
        assert lua_met(client, text, "")
        assert lua_met(client, text, kinds.encode_requires(kinds.check_requires({"gpu": ("!=", "t4")})))
        assert not lua_met(client, text, kinds.encode_requires(kinds.check_requires({"gpu": True})))
        assert not lua_met(client, text, kinds.encode_requires(kinds.check_requires({"n": ("<", 1)})))


@pytest.mark.parametrize("conds", [
    (("v", ">", "a"),), (("v", "<", "c"),), (("v", ">=", "b"),), (("n", "<", "z"),), (("v", "<=", 1),),
    (("v", "~=", "b"),), (("v", "=", "b"),), (("n", "", 1),),
])
def test_the_twins_agree_where_checking_would_refuse(client, conds):
    """Conditions check_requires refuses (an ordering op with a str, an unknown op) still get the
    same answer from both: no match, and no Lua error comparing a string with a number."""
    assert not agree(client, {"v": "b", "n": 2}, conds)


NAMES = ("a", "b", "c", "d")
VALUES = st.sampled_from(["x", "y", "", "1", "0.5", 0, 1, 1.0, -1, 0.5, 1 / 3, 2, 2**53, -(2**53), 1e-9])
NUMBERS = st.sampled_from([0, 1, 1.0, -1, 0.5, 1 / 3, 2, 2**53, -(2**53), 1e-9, -0.0])
CONDITIONS = st.one_of(
    st.just(True), VALUES,
    st.tuples(st.sampled_from(["==", "!="]), VALUES),
    st.tuples(st.sampled_from([">=", ">", "<=", "<"]), NUMBERS),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.dictionaries(st.sampled_from(NAMES[:3]), VALUES, max_size=3),
       requires=st.dictionaries(st.sampled_from(NAMES), CONDITIONS, max_size=3))
def test_the_twins_agree_on_random_labels_and_conditions(client, labels, requires):
    agree(client, kinds.check_labels(labels), kinds.check_requires(requires))
