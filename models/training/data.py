"""Loaders and leakage-free splits for Reckon events and two public formats.

* ``load_events``: Reckon's wire contract (JSONL file or iterable of dicts). Per-user
  sequences of clicks ordered by ts; leave-one-out split (last click test, the one
  before validation), as in SASRec.
* ``load_sessions``: SR-GNN's Diginetica split. Train on every prefix of the training
  sessions (a causal model sees them all in one pass over the session), test on
  ``test_samples.tsv``. Validation = every prefix of the last ``valid_fraction`` of
  the training sessions (without test examples, at least the last session), which are
  then held out of training.
* ``load_sasrec``: ``user item`` lines, chronological per user; SASRec's split.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reckon.models.core.errors import DataFormatError
from reckon.models.core.terms import hash_terms, tokenize

__all__ = ["FORMATS", "EvalSet", "SequenceData", "canonical_format", "load_dataset", "load_events", "load_sasrec",
           "load_sessions", "read_events", "sessions_file"]

_ACTIONS = {"view", "cart", "purchase"}


@dataclass
class EvalSet:
    """Next-item examples: ``histories[i]`` (oldest first) predicts ``targets[i]``."""

    histories: list[np.ndarray]
    targets: np.ndarray  # (n,) int64
    terms: np.ndarray | None = None  # (n, Q) int64 query context before the target, or None
    seen: list[np.ndarray] | None = None  # items the user ever touched (excluded as negatives)

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, n: int, seed: int = 0) -> "EvalSet":
        """A reproducible random subset of at most n examples."""
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return EvalSet(
            [self.histories[i] for i in idx],
            self.targets[idx],
            None if self.terms is None else self.terms[idx],
            None if self.seen is None else [self.seen[i] for i in idx],
        )


@dataclass
class SequenceData:
    item_ids: list[str]  # external id of internal index i + 1
    train: list[np.ndarray]  # training sequences; every position after the first is a target
    valid: EvalSet
    test: EvalSet
    train_terms: list[np.ndarray] | None = None  # per sequence (L, Q): query context before item i
    # Sequences held out of ``train`` to make ``valid`` (session data: the newest sessions),
    # trained on only after validation has chosen the epoch (TrainConfig.refit).
    held_out: list[np.ndarray] = field(default_factory=list)
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


def _empty_eval() -> EvalSet:
    return EvalSet([], np.zeros(0, dtype=np.int64))


# Session and sasrec item ids are any positive int64 (numbered 1..K for the model, _Rows); one
# past int64 was an OverflowError.
MAX_ITEM_ID = 2 ** 63 - 1


class _Rows:
    """Integer item ids -> the model's rows. Ids about 1..N (at most half of 1..max unused:
    Diginetica's and the SASRec files' are exactly 1..N) are their own rows, every id up to the
    largest ranked; sparser ones are numbered 1..K in id order (an id of 9,000,000 once asked
    for a table of 9 million rows and a 32 GB score matrix). From a version's `item_ids` the
    numbering is that version's, and an id it does not know is row 0."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids        # sorted, unique: row i + 1 is ids[i]

    @classmethod
    def of(cls, arrays: Iterable[np.ndarray], item_ids: list[str] | None) -> "_Rows":
        if item_ids is not None:
            if not all(name.isdigit() for name in item_ids):
                raise ValueError("the version's items are not integer ids: it was trained on another format")
            return cls(np.asarray([int(name) for name in item_ids], dtype=np.int64))
        arrays = [a for a in arrays if len(a)]
        seen = np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, dtype=np.int64)
        if len(seen) and int(seen[-1]) <= 2 * len(seen):
            return cls(np.arange(1, int(seen[-1]) + 1, dtype=np.int64))
        return cls(seen)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        if not len(self.ids):
            return np.zeros_like(ids)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[at] == ids, at + 1, 0)

    def known(self, ids: np.ndarray) -> np.ndarray:
        """`ids` as rows, those the numbering does not hold left out."""
        rows = self(ids)
        return rows[rows > 0]

    @property
    def names(self) -> list[str]:
        return [str(i) for i in self.ids.tolist()]


# What a line of each layout holds: a line that is not one is refused in these words, so
# a file given the wrong --format is told the layout that format reads (not another's).
SESSIONS_LAYOUT = "expected space-separated integer item ids"
TEST_LAYOUT = "expected 'prefix<TAB>label' (space-separated integer item ids, a tab, one item id)"
SASREC_LAYOUT = "expected 'user item'"


def _int_tokens(path: Path, lineno: int, text: str, items_from: int = 0, layout: str = SESSIONS_LAYOUT,
                line: str | None = None) -> list[int]:
    """The line's integers; those from position `items_from` on are item ids, checked as rows.

    Anything else is refused as not ``layout``, quoting ``line`` (default: ``text``)."""
    try:
        ids = [int(tok) for tok in text.split()]
    except ValueError:
        raise DataFormatError(path, lineno, f"{layout}, got {(text if line is None else line)[:60]!r}") from None
    items = ids[items_from:]
    if any(i < 1 for i in items):
        raise DataFormatError(path, lineno, "item ids must be >= 1 (0 is padding)")
    if any(i > MAX_ITEM_ID for i in items):
        raise DataFormatError(path, lineno, f"item id {max(items)} is above {MAX_ITEM_ID:,} (a 64-bit integer)")
    return ids


_INTEGER_LINE = re.compile(r"\d+([ \t]+\d+)*")


def _looks_like_user_item(lines: list[np.ndarray]) -> bool:
    """`user item` lines given as sessions: all pairs, consecutive ones mostly of one user (a
    session file's lines are sessions of any length, one after another)."""
    if len(lines) < 20 or any(len(line) != 2 for line in lines):
        return False
    firsts = np.array([line[0] for line in lines])
    return float(np.mean(firsts[1:] == firsts[:-1])) >= 0.5


# Far past any line of the three formats (an event, a session, a pair): a file without line breaks
# (binary, or a gzip bomb) is refused at this length, not read whole into memory.
MAX_LINE_CHARS = 16 * 1024 * 1024


def _open_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered; a gzip file (known by its first bytes) is read through."""
    if not path.is_file():
        raise DataFormatError(path, None, "not a file" if path.exists() else "file not found")
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    # utf-8-sig: a byte-order mark, which Windows tools write at the start of a text export, is not data
    with (gzip.open(path, "rt", encoding="utf-8-sig") if gzipped else path.open(encoding="utf-8-sig")) as fh:
        try:
            for lineno, line in enumerate(iter(lambda: fh.readline(MAX_LINE_CHARS + 1), ""), start=1):
                if len(line) > MAX_LINE_CHARS:
                    raise DataFormatError(path, lineno, f"a line over {MAX_LINE_CHARS:,} characters: a binary file?")
                yield lineno, line.rstrip("\n")
        except UnicodeDecodeError:      # decoded a block at a time: no exact line to name
            raise DataFormatError(path, None, "not UTF-8 text") from None
        except (OSError, EOFError) as exc:     # a gzip file cut short or corrupt
            raise DataFormatError(path, None, f"not a readable gzip file ({exc})") from None


# A column name as exports write them: user_id, itemId, session.id, prefix, label
_COLUMN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


def _id_lines(path: Path, headers: dict[str, str]) -> Iterator[tuple[int, str]]:
    """`_open_lines` of a file of integer ids, without a first line of column names only (a
    header such as 'user_id item_id', which exports write): recorded in `headers` (path -> the
    line), to be said, not refused. Anything else there (a JSON event, a CSV line, a line of
    words further on) is still refused by its loader, with its line number."""
    first = True
    for n, line in _open_lines(path):
        if first and line.strip():
            first = False
            if all(_COLUMN_NAME.fullmatch(token) for token in line.split()):
                headers[str(path)] = line[:60]
                continue
        yield n, line


# --- Diginetica (SR-GNN) ----------------------------------------------------------
def load_sessions(
    train_path: Path, test_path: Path | None = None, valid_fraction: float = 0.05, item_ids: list[str] | None = None
) -> SequenceData:
    """Sessions file + optional ``prefix<TAB>label`` test file (SR-GNN protocol).

    The full ranking covers every item id in either file (ids about 1..N: every id up to the
    largest; sparse ids: those in the files, _Rows). With ``item_ids`` (a version's) the
    numbering is that version's: items it does not know are left out of histories, and test
    examples of such a label are dropped (counted in ``description``).
    """
    train_path = Path(train_path)
    sessions = []
    headers: dict[str, str] = {}
    for n, line in _id_lines(train_path, headers):
        if "\t" in line:
            raise DataFormatError(train_path, n, "a tab: this is a test file's layout ('prefix<TAB>label'); give "
                                                 "the training sessions (train_sessions.txt, or the folder of both)")
        if line.strip():
            sessions.append(np.asarray(_int_tokens(train_path, n, line), dtype=np.int64))
    if _looks_like_user_item(sessions):
        raise DataFormatError(train_path, None, "every line is two ids and most lines share the first with the line "
                                                "before: a 'user item' file? (--format sasrec)")
    if not any(len(s) >= 2 for s in sessions):
        raise DataFormatError(train_path, None, "no session with at least two items")
    test = _empty_eval()
    if test_path is not None:
        test_path = Path(test_path)
        hist, targ = [], []
        for n, line in _id_lines(test_path, headers):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataFormatError(test_path, n, f"{TEST_LAYOUT}, got {line[:60]!r}")
            prefix, label = (_int_tokens(test_path, n, part, layout=TEST_LAYOUT, line=line) for part in parts)
            if not prefix or len(label) != 1:
                raise DataFormatError(test_path, n, "expected a non-empty prefix and one label")
            hist.append(np.asarray(prefix, dtype=np.int64))
            targ.append(label[0])
        test = EvalSet(hist, np.asarray(targ, dtype=np.int64))
    rows = _Rows.of([*(s for s in sessions if len(s) >= 2), *test.histories, test.targets], item_ids)
    sessions = [r for r in (rows.known(s) for s in sessions) if len(r) >= 2]
    labels = rows(test.targets)
    kept = np.flatnonzero(labels > 0)
    unknown = len(test) - len(kept)
    test = EvalSet([rows.known(test.histories[i]) for i in kept.tolist()], labels[kept])
    if not sessions:
        raise DataFormatError(train_path, None, "no session with at least two items the version knows")
    n_valid = int(len(sessions) * valid_fraction)
    if n_valid == 0 and not len(test):
        # Without a test set, a share that rounds to no session would leave nothing to choose the
        # epoch by or to score the version on: the newest session is held out (as events data
        # gives every user who can one a validation example). Where none can be, it is refused in
        # one line, not trained and registered blind.
        if valid_fraction > 0 and len(sessions) >= 2:
            n_valid = 1
        else:
            why = ("a valid_fraction of 0 holds out no session for validation" if valid_fraction <= 0 else
                   "its one session of two or more items cannot be held out for validation and trained on")
            test_why = "no test file (test_samples.tsv beside the data, or --test)" if test_path is None \
                else f"{test_path} holds no test examples"
            raise DataFormatError(train_path, None, f"no validation or test examples: {why}, and {test_why}")
    train, held = sessions[: len(sessions) - n_valid], sessions[len(sessions) - n_valid :]
    valid = EvalSet(
        [s[:i] for s in held for i in range(1, len(s))],
        np.asarray([s[i] for s in held for i in range(1, len(s))], dtype=np.int64),
    )
    return SequenceData(
        item_ids=rows.names,
        train=train,
        valid=valid,
        test=test,
        held_out=held,
        description={
            "format": "sessions", "train": str(train_path), "test": str(test_path),
            "train_sessions": len(train), "valid_sessions": n_valid,
            "train_targets": int(sum(len(s) - 1 for s in train)),
            "valid_samples": len(valid), "test_samples": len(test), "items": len(rows.ids),
            **({"test_samples_of_unknown_items": unknown} if item_ids is not None else {}),
            **({"headers_skipped": headers} if headers else {}),
        },
    )


def _leave_last_out(
    seqs: list[np.ndarray], ctx: list[np.ndarray] | None
) -> tuple[list[np.ndarray], list[np.ndarray] | None, EvalSet, EvalSet]:
    """SASRec's split per user: last item test, second to last validation, rest training.

    Users with fewer than 3 items only train. ``ctx[u]`` (L, Q) is the query context
    before each item; the eval sets carry the context before their target.
    """
    train: list[np.ndarray] = []
    train_ctx: list[np.ndarray] = []
    rows: dict[str, list[list]] = {"valid": [[], [], []], "test": [[], [], []]}  # histories, targets, ctx
    seen: list[np.ndarray] = []
    for u, s in enumerate(seqs):
        cut = len(s) if len(s) < 3 else len(s) - 2
        if cut >= 2:
            train.append(s[:cut])
            if ctx is not None:
                train_ctx.append(ctx[u][:cut])
        if len(s) < 3:
            continue
        for name, end in (("valid", len(s) - 2), ("test", len(s) - 1)):
            rows[name][0].append(s[:end])
            rows[name][1].append(s[end])
            if ctx is not None:
                rows[name][2].append(ctx[u][end])
        seen.append(np.unique(s))

    def evalset(name: str) -> EvalSet:
        hist, targ, c = rows[name]
        terms = np.stack(c).astype(np.int64) if ctx is not None and c else None
        return EvalSet(hist, np.asarray(targ, dtype=np.int64), terms, list(seen))

    return train, train_ctx if ctx is not None else None, evalset("valid"), evalset("test")


# --- SASRec "user item" -----------------------------------------------------------
def load_sasrec(path: Path, item_ids: list[str] | None = None) -> SequenceData:
    """``user item`` lines, chronological per user. Users with >= 3 items give one
    validation (second to last) and one test (last) example; the rest is training. Items are
    numbered as in load_sessions (``item_ids``: a version's numbering, unknown items left out)."""
    path = Path(path)
    seqs: dict[int, list[int]] = {}
    headers: dict[str, str] = {}
    for n, line in _id_lines(path, headers):
        if not line.strip():
            continue
        if len(line.split()) != 2:
            raise DataFormatError(path, n, f"{SASREC_LAYOUT}, got {line[:60]!r}")
        ids = _int_tokens(path, n, line, items_from=1, layout=SASREC_LAYOUT)     # the user is no row
        seqs.setdefault(ids[0], []).append(ids[1])
    if not seqs:
        raise DataFormatError(path, None, "no interactions")
    raw = [np.asarray(v, dtype=np.int64) for v in seqs.values()]
    rows = _Rows.of(raw, item_ids)
    train, _, valid, test = _leave_last_out([rows.known(v) for v in raw], None)
    if not len(valid):      # as sessions without validation or test: refused, not trained blind
        raise DataFormatError(path, None, "no validation or test examples: no user has three or more items "
                                          "(a user's last item is a test example, the one before it validation)")
    return SequenceData(
        item_ids=rows.names,
        train=train,
        valid=valid,
        test=test,
        description={"format": "sasrec", "path": str(path), "users": len(seqs), "items": len(rows.ids),
                     "interactions": int(sum(len(v) for v in seqs.values())),
                     **({"headers_skipped": headers} if headers else {})},
    )


# --- Reckon events ----------------------------------------------------------------
def read_events(source: str | Path | Iterable[dict[str, Any]]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """Yield (origin, line/index, event) from a JSONL path or an iterable of dicts."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        for n, line in _open_lines(path):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                text = line.strip()
                hint = ("; a sessions or 'user item' file? (--format sessions or sasrec)"
                        if _INTEGER_LINE.fullmatch(text) else "" if text.startswith(("{", "[")) else
                        "; --format events reads JSON lines of click and search events (README); sessions of "
                        "space-separated item ids take --format sessions, 'user item' lines --format sasrec")
                raise DataFormatError(path, n, f"invalid JSON: {exc.msg}{hint}") from None
            except RecursionError:      # a value nested thousands of levels deep
                raise DataFormatError(path, n, "invalid JSON: nested too deeply") from None
            if not isinstance(event, dict):
                raise DataFormatError(path, n, "expected a JSON object")
            yield str(path), n, event
    else:
        for n, event in enumerate(source, start=1):
            if not isinstance(event, dict):
                raise DataFormatError("<events>", n, "expected a dict")
            yield "<events>", n, event


def _finite_number(value: Any) -> bool:
    """A JSON number that is finite as a float (NaN, Infinity and 1e999 are not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:       # an integer too large for a float
        return False


def _check_event(origin: str, n: int, ev: dict[str, Any]) -> str:
    """Return "click" or "search"; raise DataFormatError naming the field otherwise."""
    kind = "search" if "query" in ev else "click"
    need = ("event_id", "user_id", "query", "ts") if kind == "search" else ("event_id", "user_id", "item_id", "action", "ts")
    for key in need:
        if key not in ev:
            raise DataFormatError(origin, n, f"{kind} event is missing {key!r}")
    if not _finite_number(ev["ts"]):
        raise DataFormatError(origin, n, f"'ts' must be unix seconds, got {ev['ts']!r}")
    if kind == "click" and (not isinstance(ev["item_id"], (str, int)) or isinstance(ev["item_id"], bool)):
        raise DataFormatError(origin, n, f"'item_id' must be a string, got {ev['item_id']!r}")
    if kind == "click" and ev["action"] not in _ACTIONS:
        raise DataFormatError(origin, n, f"unknown action {ev['action']!r}")
    if kind == "search" and not isinstance(ev["query"], str):
        raise DataFormatError(origin, n, "'query' must be a string")
    return kind


def load_events(
    source: str | Path | Iterable[dict[str, Any]],
    query_buckets: int = 0,
    query_terms: int = 8,
    item_ids: list[str] | None = None,
    strict: bool = True,
) -> SequenceData:
    """Reckon click/search events -> per-user sequences, leave-one-out split.

    Duplicate ``event_id``s (at-least-once delivery) are dropped. With ``item_ids`` the
    vocabulary is fixed (clicks on unknown items are dropped), e.g. to evaluate a model.
    Query context of a click = the last ``query_terms`` hashed terms of the user's
    searches strictly before it. ``strict=False`` skips malformed events (counted in
    ``description["skipped"]``) instead of raising, for a live stream with bad events.
    """
    seen_ids: set[str] = set()
    clicks: dict[str, list[tuple[float, str]]] = {}
    searches: dict[str, list[tuple[float, list[int]]]] = {}
    skipped = 0
    for origin, n, ev in read_events(source):
        try:
            kind = _check_event(origin, n, ev)
        except DataFormatError:
            if strict:
                raise
            skipped += 1
            continue
        eid = str(ev["event_id"])
        if eid in seen_ids:
            continue
        seen_ids.add(eid)
        user = str(ev["user_id"])
        if kind == "click":
            clicks.setdefault(user, []).append((float(ev["ts"]), str(ev["item_id"])))
        elif query_buckets:
            searches.setdefault(user, []).append((float(ev["ts"]), hash_terms(tokenize(ev["query"]), query_buckets)))
    fixed = item_ids is not None
    vocab: dict[str, int] = {s: i + 1 for i, s in enumerate(item_ids or [])}
    users = sorted(clicks)
    seqs: list[np.ndarray] = []
    ctx: list[np.ndarray] = []
    unknown = 0                     # clicks left out: their items are not in the fixed vocabulary
    for user in users:
        events = sorted(clicks[user], key=lambda e: e[0])  # stable: ties keep arrival order
        idx, times = [], []
        for ts, item in events:
            if item not in vocab:
                if fixed:
                    unknown += 1
                    continue
                vocab[item] = len(vocab) + 1
            idx.append(vocab[item])
            times.append(ts)
        seqs.append(np.asarray(idx, dtype=np.int64))
        ctx.append(_query_context(times, sorted(searches.get(user, []), key=lambda s: s[0]), query_terms))
    use_q = query_buckets > 0
    train, train_terms, valid, test = _leave_last_out(seqs, ctx if use_q else None)
    names = [""] * len(vocab)
    for name, i in vocab.items():
        names[i - 1] = name
    return SequenceData(
        item_ids=names,
        train=train,
        train_terms=train_terms,
        valid=valid,
        test=test,
        description={"format": "events", "source": str(source) if isinstance(source, (str, Path)) else "<events>",
                     "users": len(users), "items": len(vocab), "clicks": int(sum(len(s) for s in seqs)),
                     "query_buckets": query_buckets, "skipped": skipped,
                     **({"clicks_on_unknown_items": unknown} if fixed else {})},
    )


def _query_context(click_ts: list[float], searches: list[tuple[float, list[int]]], q: int) -> np.ndarray:
    """(L, q) array: the last q hashed terms searched strictly before each click, 0-padded left."""
    out = np.zeros((len(click_ts), q), dtype=np.int64)
    recent: list[int] = []
    j = 0
    for i, ts in enumerate(click_ts):
        while j < len(searches) and searches[j][0] < ts:
            recent = (recent + searches[j][1])[-q:]
            j += 1
        if recent:
            out[i, q - len(recent):] = recent
    return out


def load_dataset(
    path: str | Path,
    fmt: str,
    test_path: str | Path | None = None,
    query_buckets: int = 0,
    query_terms: int = 8,
    item_ids: list[str] | None = None,
    valid_fraction: float = 0.05,
) -> SequenceData:
    """Dispatch on ``fmt`` ("events" | "sessions" | "sasrec"; "jsonl" is the old name of "events").

    For "sessions", ``path`` may be a directory holding ``train_sessions.txt`` and
    ``test_samples.tsv``, or the training file itself; without ``test_path`` the test set
    is ``test_samples.tsv`` in that directory (the file's own), where there is one.
    ``item_ids`` fixes the vocabulary to a model's (to evaluate it).
    """
    path = Path(path)
    fmt = canonical_format(fmt)
    if test_path is not None and fmt != "sessions":     # it would be ignored: the score would not be on it
        raise ValueError(f"--test is read with --format sessions only; {fmt} data holds out its own test examples")
    if query_buckets and fmt != "events":               # a query table no row would ever read
        raise ValueError(f"--query-buckets hashes events' search terms; --format {fmt} data has none")
    if fmt != "sessions" and path.is_dir():
        sessions = sessions_file(path)
        raise DataFormatError(path, None, "a directory" + (f" of sessions ({sessions.name}): --format sessions"
                                                           if sessions.exists() else f": give the {fmt} file"))
    if fmt == "events":
        return load_events(path, query_buckets, query_terms, item_ids)
    if fmt == "sessions":
        folder = path if path.is_dir() else path.parent     # a file's test set is beside it, as the help says
        if path.is_dir():
            path = sessions_file(path)
        beside = _plain_or_gzipped(folder / "test_samples.tsv")
        if test_path is None and beside.exists() and beside != path:
            test_path = beside
        return load_sessions(path, Path(test_path) if test_path else None, valid_fraction, item_ids)
    return load_sasrec(path, item_ids)


def sessions_file(folder: Path) -> Path:
    """The training sessions a sessions folder holds (`train_sessions.txt`, or its .gz)."""
    return _plain_or_gzipped(folder / "train_sessions.txt")


def _plain_or_gzipped(path: Path) -> Path:
    """`path`, or `path`.gz where only that exists."""
    packed = path.with_name(path.name + ".gz")
    return packed if not path.exists() and packed.exists() else path


FORMATS = ("events", "sessions", "sasrec")
_ALIASES = {"jsonl": "events"}     # the events format's name before presets were named by format


def canonical_format(fmt: str) -> str:
    """``fmt`` as one of FORMATS (an old name mapped); a ValueError naming the choices otherwise."""
    fmt = _ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return fmt
