"""Hypothesis strategies for hostile events: what a careless or malicious producer can put
on the wire, field by field, as JSON text (so tokens json.dumps never writes are included:
NaN, Infinity, 1e400, integers of thousands of digits, nesting deeper than the parsers go).

Strings mix every class of character the contract must refuse or keep: lone surrogates
(escaped, or raw as CESU-8 bytes), C0/C1 controls, invisible and bidi format characters,
separators, private-use and unassigned code points, and lengths around each limit.
"""

from __future__ import annotations

import json
import time

from hypothesis import strategies as st

from reckon.streams.pipeline.contracts import MAX_DEPTH, MAX_ID_CHARS, MAX_QUERY_CHARS, MAX_RESULTS

FIELDS = ("event_id", "user_id", "item_id", "action", "ts", "query", "results", "tenant", "session_id",
          "price")

_odd_chars = (st.characters(categories=["Cs"]) | st.characters(categories=["Cc"])
              | st.characters(categories=["Cf", "Zl", "Zp", "Zs", "Co", "Cn"])
              | st.sampled_from(["\u202e", "\u2066", "\u200b", "\ufeff", "\u00a0", "\u3000", "\x7f", "\x85"]))
hostile_text = (st.text(st.characters() | _odd_chars, max_size=12)
                | st.text(st.sampled_from("ab\u00e9\U0001f600"), min_size=MAX_ID_CHARS - 2, max_size=MAX_ID_CHARS + 2)
                | st.text(st.sampled_from("ab "), min_size=MAX_QUERY_CHARS - 1, max_size=MAX_QUERY_CHARS + 1)
                | st.sampled_from(["", " ", "u1", "i1", "acme", "red lamp", "\ud800", "a\u0000b", "\udc00\ud800"]))
hostile_numbers = (st.floats() | st.integers(-(10**40), 10**40)
                   | st.sampled_from([0, -0.0, 1e300, -1e300, 1.7976931348623157e308, 5e-324, 2**63, 2**64, 10**4000]))
_scalars = st.none() | st.booleans() | hostile_numbers | hostile_text
hostile_values = st.recursive(_scalars, lambda children: st.lists(children, max_size=3)
                              | st.dictionaries(hostile_text, children, max_size=3), max_leaves=6)

# JSON text json.dumps never produces.
_tokens = st.sampled_from(["NaN", "-NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0",
                           "1" + "0" * 400, "1" + "0" * 5000, "true", "null", "{}", "[]"])
_nesting = st.integers(1, 1200).map(lambda d: "[" * d + "]" * d) | st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3).map(
    lambda d: '{"a":' * (d - 1) + "[]" + "}" * (d - 1))


def fragments(values: st.SearchStrategy) -> st.SearchStrategy[str]:
    """JSON text for one value: dumped (non-ASCII escaped or raw), or a raw token."""
    dumped = st.tuples(values, st.booleans()).map(lambda t: json.dumps(t[0], ensure_ascii=t[1]))
    return dumped | _tokens | _nesting


def _now_ish(now: float) -> st.SearchStrategy:
    return (st.floats(now - 8 * 86400, now + 600) | st.integers(int(now) - 8 * 86400, int(now) + 600)
            | st.just(now))


def field_values(now: float) -> dict[str, st.SearchStrategy[str]]:
    """Per field: mostly plausible values, often hostile ones, as JSON text."""
    ids = st.text(min_size=1, max_size=8) | st.integers(0, 10**22)
    plausible = {
        "event_id": ids, "user_id": ids, "item_id": ids,
        "action": st.sampled_from(["view", "cart", "purchase", "View", "", "buy"]),
        "ts": _now_ish(now), "query": st.sampled_from(["red lamp", "wool  SOCKS", "x"]),
        "results": st.lists(ids, max_size=4) | st.lists(st.just("i1"), min_size=MAX_RESULTS - 1,
                                                         max_size=MAX_RESULTS + 1),
        "tenant": st.sampled_from(["", "acme", "globex"]), "session_id": ids | st.just(""),
        "price": st.none() | st.floats(0, 1e6) | st.integers(0, 10**12),
    }
    return {name: fragments(good) | fragments(hostile_values) | fragments(st.lists(hostile_text, max_size=3))
            for name, good in plausible.items()}


@st.composite
def documents(draw, now: float | None = None) -> bytes:
    """A whole record value: fields (some repeated, some missing, one unknown) as JSON text,
    then sometimes a byte-level trick: invalid UTF-8, CESU-8 surrogates, a BOM, UTF-16,
    trailing junk, an array around it."""
    values = field_values(time.time() if now is None else now)
    names = draw(st.lists(st.sampled_from(FIELDS + ("zz_unknown",)), max_size=14))
    members = []
    for name in names:
        key = draw(st.sampled_from([json.dumps(name), json.dumps(name).replace("_", "\\u005f")]))
        members.append(f"{key}: {draw(values.get(name, fragments(hostile_values)))}")
    raw = ("{" + ", ".join(members) + "}").encode("utf-8", "surrogatepass")
    tweak = draw(st.sampled_from(["none"] * 8 + ["bad_utf8", "cesu", "bom", "utf16", "space", "trailing", "array"]))
    if tweak == "bad_utf8":
        raw = raw[:-1] + b', "zz": "\xff\xc0\xaf"}'
    elif tweak == "cesu":
        raw = raw[:-1] + b', "zz": "\xed\xa0\x80"}'
    elif tweak == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif tweak == "utf16":
        raw = raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
    elif tweak == "space":
        raw = b" \n" + raw + b"\t"
    elif tweak == "trailing":
        raw = raw + b"x"
    elif tweak == "array":
        raw = b"[" + raw + b"]"
    return raw


@st.composite
def valid_documents(draw, now: float | None = None) -> bytes:
    """Valid events with every optional field, non-ASCII text, escapes and int ids."""
    now = time.time() if now is None else now
    text = st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]),
                   min_size=1, max_size=8)
    ids = text | st.integers(0, 10**22)
    common = {"event_id": ids, "user_id": ids, "ts": _now_ish(now)}
    optional = {"tenant": st.sampled_from(["acme", "globex"]) | text, "session_id": ids}
    if draw(st.booleans()):
        doc = draw(st.fixed_dictionaries(
            {**common, "item_id": ids, "action": st.sampled_from(["view", "cart", "purchase"])},
            optional={**optional, "price": st.none() | st.floats(0, 1e9) | st.integers(0, 10**9)}))
    else:
        doc = draw(st.fixed_dictionaries(
            {**common, "query": st.text(min_size=1, max_size=30)},
            optional={**optional, "results": st.none() | st.lists(ids, max_size=6)}))
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    extra = draw(st.none() | st.sampled_from(["1" + "0" * 5000, "-" + "9" * 4400, "1e400", "[1, {}]"]))
    if extra is not None:       # a field the contract does not read, with what json.dumps never writes
        raw = raw[:-1] + ', "zz_extra": ' + extra + "}"
    return raw.encode("utf-8")
