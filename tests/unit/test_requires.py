"""A task's ``requires`` (luasched/core/kinds.py): checking, the stored text, the command line's
form, and which labels satisfy it. Its Lua twin is tested in tests/scripts/test_requires_lua.py."""

from __future__ import annotations

import math

import pytest

from luasched.core import kinds
from luasched.core.kinds import check_requires, decode_requires, encode_requires, parse_requirement, satisfies

# --- checking ----------------------------------------------------------------------------------


def test_conditions_are_normalised_and_sorted_by_label():
    got = check_requires({"vram_gb": (">=", 40), "gpu": "a100", "ssd": True, "zone": ("!=", "eu"), "ratio": 0.5,
                          "n": ("==", 80), "x.y/z-1": ("<", -2.5)})
    assert got == (
        ("gpu", "==", "a100"),
        ("n", "==", 80),
        ("ratio", "==", 0.5),
        ("ssd", "exists", None),
        ("vram_gb", ">=", 40),
        ("x.y/z-1", "<", -2.5),
        ("zone", "!=", "eu"),
    )
    assert check_requires({"gpu": "a100"}) == check_requires({"gpu": ("==", "a100")})
    assert check_requires({}) == check_requires(None) == ()
    assert type(check_requires({"n": 80})[0][2]) is int
    assert type(check_requires({"n": 80.0})[0][2]) is float


def test_every_op_and_the_bounds_are_accepted():
    for op in kinds.OPS:
        assert check_requires({"n": (op, 2**53)}) == (("n", op, 2**53),)
        assert check_requires({"n": (op, -float(2**53))}) == (("n", op, -float(2**53)),)
    assert len(check_requires({f"l{i}": i for i in range(64)})) == 64
    assert check_requires({"s": "x" * 256}) == (("s", "==", "x" * 256),)


ALLOWED = r"a str, an int or a float \(equal\), True \(present\) or a tuple \(op, value\)"


@pytest.mark.parametrize(("requires", "error", "says"), [
    ({"gpu": False}, TypeError, rf"requires 'gpu' must be {ALLOWED}.*, not False"),
    ({"gpu": None}, TypeError, rf"requires 'gpu' must be {ALLOWED}.*, not None"),
    ({"gpu": ["a100"]}, TypeError, rf"requires 'gpu' must be {ALLOWED}.*, not list"),
    ({"gpu": {"==": "a100"}}, TypeError, rf"requires 'gpu' must be {ALLOWED}.*, not dict"),
    ({"gpu": ["==", "a100"]}, TypeError, r"requires 'gpu' must be .*, not list"),
    ({"vram": math.nan}, ValueError, r"requires 'vram' must be a finite number, not nan"),
    ({"vram": ("<", math.inf)}, ValueError, r"the value of requires 'vram' < must be a finite number, not inf"),
    ({"vram": (">=", -math.inf)}, ValueError, r"requires 'vram' >= must be a finite number, not -inf"),
    ({"n": ("==", True)}, TypeError, r"the value of requires 'n' == must be a str, an int or a float, not bool"),
    ({"n": ("!=", None)}, TypeError, r"the value of requires 'n' != must be a str, an int or a float, not NoneType"),
    ({"n": ("==", [1])}, TypeError, r"requires 'n' == must be a str, an int or a float, not list"),
    ({"n": ("=", 1)}, ValueError, rf"requires 'n': \('=', 1\) is no condition; a condition is {ALLOWED}"),
    ({"n": ("~=", 1)}, ValueError, r"requires 'n': \('~=', 1\) is no condition; .*op one of ==, !=, >=, >, <=, <"),
    ({"n": ("exists", None)}, ValueError, r"requires 'n': \('exists', None\) is no condition"),
    ({"n": (">=",)}, ValueError, r"requires 'n': \('>=',\) is no condition"),
    ({"n": (">=", 1, 2)}, ValueError, r"requires 'n': \('>=', 1, 2\) is no condition"),
    ({"n": (">=", "40")}, ValueError, r"requires 'n': >= compares numbers, not the str '40'; use == or !="),
    ({"n": ("<", "a")}, ValueError, r"requires 'n': < compares numbers, not the str 'a'"),
    ({"n": 2**53 + 1}, ValueError, r"requires 'n' must be a number within -2\*\*53\.\.2\*\*53 .*9007199254740993"),
    ({"n": (">", -(2**53) - 1)}, ValueError, r"requires 'n' > must be a number within -2\*\*53\.\.2\*\*53"),
    ({"n": ("<=", 1e300)}, ValueError, r"requires 'n' <= must be a number within -2\*\*53\.\.2\*\*53"),
    ({"s": "x" * 257}, ValueError, r"requires 's' must be at most 256 printable characters"),
    ({"s": ("!=", "a\nb")}, ValueError, r"requires 's' != must be at most 256 printable characters"),
    ({"1gpu": "x"}, ValueError, r"label name '1gpu' must be a letter or '_', then up to 62 letters"),
    ({"": True}, ValueError, r"label name '' must be a letter"),
    ({"gpu>": 1}, ValueError, r"label name 'gpu>'"),
    ({"g" * 64: 1}, ValueError, r"label name 'g{64}'"),
    ({1: "x"}, ValueError, r"label name 1 must be"),
    ({f"l{i}": i for i in range(65)}, ValueError, r"a task requires at most 64 labels, not 65"),
    ([("gpu", "a100")], TypeError, r"requires must be a mapping of label name to condition, not list"),
    ("gpu", TypeError, r"requires must be a mapping .*, not str"),
])
def test_bad_requires_are_refused_with_what_is_allowed(requires, error, says):
    with pytest.raises(error, match=says):
        check_requires(requires)


@pytest.mark.parametrize(("value", "ok"), [
    (2**53, True), (-(2**53), True), (float(2**53), True), (2**53 + 1, False), (-(2**53) - 1, False),
    (1e16, False), (-1e300, False),
])
def test_a_number_label_lies_within_two_to_the_53(value, ok):
    if ok:
        assert kinds.check_labels({"n": value}) == {"n": value}
    else:
        with pytest.raises(ValueError, match=r"label 'n' must be a number within -2\*\*53\.\.2\*\*53 \(exact in a Lua"):
            kinds.check_labels({"n": value})


# --- the stored text ---------------------------------------------------------------------------


def test_the_encoding_is_canonical_compact_json():
    conds = check_requires({"vram_gb": (">=", 40), "gpu": "a100", "ssd": True, "zone": ("!=", "été"),
                            "ratio": ("<", 0.5)})
    text = encode_requires(conds)
    assert text == ('[["gpu","==","a100"],["ratio","<",0.5],["ssd","exists",null],'
                    '["vram_gb",">=",40],["zone","!=","été"]]')
    assert encode_requires(check_requires({"zone": ("!=", "été"), "ssd": True, "ratio": ("<", 0.5),
                                           "gpu": ("==", "a100"), "vram_gb": (">=", 40)})) == text
    assert encode_requires(()) == ""
    assert encode_requires(check_requires({})) == ""


@pytest.mark.parametrize("requires", [
    {}, {"gpu": "a100"}, {"n": 80}, {"n": 80.0}, {"n": ("<", 0.1)}, {"n": (">", -(2**53))}, {"s": ("!=", "80")},
    {"s": ""}, {"s": True}, {"q": ' "quoted", [x] '}, {f"l{i}": ("<=", i / 3) for i in range(64)},
])
def test_the_encoding_round_trips_with_types_kept(requires):
    conds = check_requires(requires)
    back = decode_requires(encode_requires(conds))
    assert back == conds
    assert [type(v) for _, _, v in back] == [type(v) for _, _, v in conds]


def test_decoding_nothing_is_no_condition():
    assert decode_requires("") == decode_requires(None) == ()


def test_decoding_checks_again():
    with pytest.raises(ValueError, match=">= compares numbers"):
        decode_requires('[["n",">=","40"]]')


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("gpu", ("gpu", True)),
    (" gpu ", ("gpu", True)),
    ("gpu=a100", ("gpu", "a100")),
    ("gpu==a100", ("gpu", ("==", "a100"))),
    ("gpu!=t4", ("gpu", ("!=", "t4"))),
    ("vram_gb>=40", ("vram_gb", (">=", 40))),
    ("vram_gb>40", ("vram_gb", (">", 40))),
    ("vram_gb<=40.5", ("vram_gb", ("<=", 40.5))),
    ("vram_gb<40", ("vram_gb", ("<", 40))),
    ("vram_gb = 80", ("vram_gb", 80)),
    ("n >= -1e3", ("n", (">=", -1000.0))),
    ("zone = eu west ", ("zone", "eu west")),
    ("url=a=b", ("url", "a=b")),
    ("odd==nan", ("odd", ("==", "nan"))),  # not a finite number: a string
    ("empty=", ("empty", "")),
])
def test_a_command_line_requirement(text, parsed):
    got = parse_requirement(text)
    assert got == parsed
    want = parsed[1][1] if isinstance(parsed[1], tuple) else parsed[1]
    value = got[1][1] if isinstance(got[1], tuple) else got[1]
    assert type(value) is type(want)
    check_requires(dict([got]))


@pytest.mark.parametrize(("text", "says"), [
    ("", "label name ''"),
    ("=a100", "label name ''"),
    ("1x=2", "label name '1x'"),
    ("gpu!", "label name 'gpu!'"),
    ("vram_gb>=big", "requires 'vram_gb': >= compares numbers, not the str 'big'"),
    ("vram_gb<inf", "requires 'vram_gb': < compares numbers, not the str 'inf'"),
    ("vram_gb=>40", "a requirement is NAME, NAME=VALUE or NAME OP VALUE with OP one of ==, !=, >=, >, <=, <"),
    ("vram_gb=<40", "a requirement is NAME"),
    ("gpu===a100", "a requirement is NAME"),
    ("n=99999999999999999999", "requires 'n' must be a number within"),
])
def test_a_bad_command_line_requirement_is_refused(text, says):
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace("*", r"\*")):
        parse_requirement(text)


def test_a_requirement_in_words():
    conds = check_requires({"gpu": "a100", "vram_gb": (">=", 40), "ssd": True, "zone": ("!=", "80"),
                            "ratio": ("<", 0.5), "tag": ""})
    assert kinds.describe_requires(conds) == ('gpu == a100, ratio < 0.5, ssd present, tag == "", vram_gb >= 40, '
                                              'zone != "80"')
    assert kinds.describe_requires(()) == ""


# --- which labels satisfy ----------------------------------------------------------------------


LABELS = {"gpu": "a100", "vram_gb": 80, "ratio": 0.5, "zone": "80", "big": 2**53, "neg": -3}


@pytest.mark.parametrize(("requires", "met"), [
    ({}, True),
    # equal
    ({"gpu": "a100"}, True),
    ({"gpu": "A100"}, False),
    ({"gpu": ("==", "a100")}, True),
    ({"vram_gb": 80}, True),
    ({"vram_gb": 80.0}, True),  # an int equals the float of the same value
    ({"ratio": 0.5}, True),
    ({"vram_gb": "80"}, False),  # a number never equals a str
    ({"zone": 80}, False),
    ({"zone": "80"}, True),
    ({"big": float(2**53)}, True),
    ({"big": 2**53 - 1}, False),
    # not equal
    ({"gpu": ("!=", "t4")}, True),
    ({"gpu": ("!=", "a100")}, False),
    ({"vram_gb": ("!=", 80.0)}, False),
    ({"vram_gb": ("!=", "80")}, True),
    ({"zone": ("!=", 80)}, True),
    # present
    ({"gpu": True}, True),
    ({"zone": True}, True),
    ({"ssd": True}, False),
    # ordering
    ({"vram_gb": (">=", 80)}, True),
    ({"vram_gb": (">=", 80.5)}, False),
    ({"vram_gb": (">", 79.999)}, True),
    ({"vram_gb": (">", 80)}, False),
    ({"vram_gb": ("<=", 80.0)}, True),
    ({"vram_gb": ("<", 80)}, False),
    ({"ratio": ("<", 1)}, True),
    ({"neg": (">", -4)}, True),
    ({"neg": ("<", -3)}, False),
    ({"big": (">=", 2**53)}, True),
    ({"big": (">", 2**53 - 1)}, True),
    # ordering on a str label: no match, no error
    ({"zone": (">=", 0)}, False),
    ({"zone": ("<", 100)}, False),
    ({"gpu": (">", -(2**53))}, False),
    # an absent label, with each op
    ({"ssd": "x"}, False),
    ({"ssd": ("==", 1)}, False),
    ({"ssd": ("!=", "x")}, True),
    ({"ssd": ("!=", 0)}, True),
    ({"ssd": (">=", 0)}, False),
    ({"ssd": (">", 0)}, False),
    ({"ssd": ("<=", 0)}, False),
    ({"ssd": ("<", 0)}, False),
    # every condition must hold
    ({"gpu": "a100", "vram_gb": (">=", 40), "zone": True}, True),
    ({"gpu": "a100", "vram_gb": (">=", 40), "ssd": True}, False),
])
def test_satisfies(requires, met):
    assert satisfies(LABELS, check_requires(requires)) is met


def test_no_labels_satisfy_only_what_asks_for_nothing_present():
    assert satisfies({}, ())
    assert satisfies({}, check_requires({"gpu": ("!=", "t4"), "n": ("!=", 1)}))
    for cond in ("a100", True, ("==", 1), (">=", 0), (">", 0), ("<=", 0), ("<", 0)):
        assert not satisfies({}, check_requires({"gpu": cond})), cond


def test_ordering_on_strings_never_raises():
    """Python would raise comparing a str with a number, or order two strs: neither happens."""
    assert not satisfies({"v": "b"}, (("v", ">", 1),))
    assert not satisfies({"v": "b"}, (("v", ">", "a"),))  # unchecked: ordering ops take numbers only
    assert not satisfies({"v": 2}, (("v", "<", "a"),))


def test_an_unknown_op_matches_nothing():
    assert not satisfies({"v": 1}, (("v", "~=", 2),))
    assert not satisfies({}, (("v", "=", 1),))
