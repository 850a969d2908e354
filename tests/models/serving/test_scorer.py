import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from reckon.models.core.errors import ScorerError
from reckon.models.serving.scorer import DeviceUsage, Scorer
from reckon.models.serving.threads import THREAD_NAME
from reckon.models.training.publish import load_checkpoint


@pytest.fixture(scope="module")
def scorer(tiny_version) -> Scorer:
    return Scorer.load(tiny_version, device="cpu", variant="fp32")


def random_batch(s: Scorer, b: int, t: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hist = rng.integers(1, s.num_items + 1, size=(b, t), dtype=np.int64)
    hist[:, : t // 3] = 0
    return hist, rng.integers(1, s.num_items + 1, size=(b, c), dtype=np.int64)


def test_defaults_on_cpu(tiny_version) -> None:
    s = Scorer.load(tiny_version)  # no GPU here: CPU and int8
    assert s.device == "cpu" and s.provider == "CPUExecutionProvider" and s.variant == "int8"
    assert s.version == tiny_version.version and s.max_len == 12


def test_batch_equals_one_by_one(scorer: Scorer) -> None:
    hist, cand = random_batch(scorer, 9, scorer.max_len, 15)
    terms = np.array([scorer.query_term_ids(["red", "shoes"])] * 9)
    batch = scorer.score(hist, cand, terms)
    one = np.concatenate([scorer.score(hist[i : i + 1], cand[i : i + 1], terms[i : i + 1]) for i in range(9)])
    np.testing.assert_allclose(batch, one, atol=1e-5)


def test_matches_pytorch_and_pads_or_truncates(scorer: Scorer, tiny_version) -> None:
    model = load_checkpoint(tiny_version.path / "model.pt")
    hist, cand = random_batch(scorer, 4, scorer.max_len, 6)
    with torch.no_grad():
        want = model.score(torch.from_numpy(hist), torch.from_numpy(cand)).numpy()
    np.testing.assert_allclose(scorer.score(hist, cand), want, atol=1e-4)
    short = hist[:, -5:]  # shorter input is left-padded by the scorer
    np.testing.assert_allclose(scorer.score(short, cand), scorer.score(np.pad(short, ((0, 0), (7, 0))), cand), atol=1e-6)
    long = np.concatenate([np.full((4, 30), 3), hist], axis=1)  # longer input keeps the last max_len
    np.testing.assert_allclose(scorer.score(long, cand), scorer.score(hist, cand), atol=1e-6)


def test_ids_and_query_terms(scorer: Scorer, tiny_version) -> None:
    first = tiny_version.item_ids[0]
    assert scorer.item_index(first) == 1 and scorer.item_index("no-such-item") == 0
    assert scorer.item_ids(np.array([1, 0])) == [first, ""]
    ids = scorer.query_term_ids(["red", "shoes"])
    assert len(ids) == 2 and all(1 <= i <= 64 for i in ids) and ids == scorer.query_term_ids(["Red", "shoes"])


def test_nearest_items(scorer: Scorer) -> None:
    idx = np.array([1, 5, 9])
    near = scorer.nearest_items(idx, 4)
    assert near.shape == (3, 4) and near.dtype == np.int64
    for i, row in zip(idx, near):
        assert i not in row and 0 not in row and len(set(row.tolist())) == 4


def test_nearest_items_follow_learned_topics(scorer: Scorer) -> None:
    """Items of one generated topic are followed by each other, so their embeddings cluster."""
    idx = np.array([scorer.item_index(f"red-{i}") for i in range(12)])
    near = scorer.nearest_items(idx, 3)
    names = scorer.item_ids(near)
    assert np.mean([n.startswith("red-") for n in names]) > 0.5


def test_bad_input_and_device(scorer: Scorer, tiny_version) -> None:
    with pytest.raises(ScorerError, match="history must be"):
        scorer.score(np.zeros(5, dtype=np.int64), np.zeros((1, 2), dtype=np.int64))
    with pytest.raises(ScorerError, match="candidates must be"):
        scorer.score(np.zeros((2, 5), dtype=np.int64), np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ScorerError, match="Unknown device"):
        Scorer.load(tiny_version, device="tpu")


def test_all_variants_load_and_agree_on_top_item(tiny_version) -> None:
    s32 = Scorer.load(tiny_version, device="cpu", variant="fp32")
    hist, cand = random_batch(s32, 32, 12, 20, seed=5)
    top = s32.score(hist, cand).argmax(axis=1)
    for variant in ("int8", "fp16"):
        other = Scorer.load(tiny_version, device="cpu", variant=variant).score(hist, cand).argmax(axis=1)
        assert np.mean(other == top) >= 0.8


def test_rows_are_scored_at_their_history_length(scorer: Scorer, tiny_version, tmp_path) -> None:
    """A batch mixing empty, short and full histories is split by width, and every row
    scores as its padded full-width input does in PyTorch and in a fixed-width export."""
    import onnx

    from reckon.models.serving.runtime import session_for

    model = load_checkpoint(tiny_version.path / "model.pt")
    rng = np.random.default_rng(7)
    # widths 1 (43 rows), 2 (5: too few for a call, padded to 6 with the 35 of width 6), 12 (3)
    lengths = [0] * 3 + [1] * 40 + [2] * 5 + [5] * 35 + [12] * 3
    rng.shuffle(lengths)
    hist = np.zeros((len(lengths), scorer.max_len), dtype=np.int64)
    for row, n in enumerate(lengths):
        if n:
            hist[row, -n:] = rng.integers(1, scorer.num_items + 1, size=n)
    cand = rng.integers(1, scorer.num_items + 1, size=(len(lengths), 9), dtype=np.int64)
    with torch.no_grad():
        want = model.score(torch.from_numpy(hist), torch.from_numpy(cand)).numpy()
    calls: list[tuple[int, int]] = []
    run = scorer._run
    scorer._run = lambda feeds, gpu: calls.append(feeds["history"].shape) or run(feeds, gpu)
    try:
        np.testing.assert_allclose(scorer.score(hist, cand), want, atol=1e-4)
    finally:
        del scorer._run
    assert sorted(calls) == [(3, 12), (40, 6), (43, 1)]

    fixed = onnx.load(str(tiny_version.onnx_path("fp32")))
    time_dim = fixed.graph.input[0].type.tensor_type.shape.dim[1]
    assert time_dim.dim_param  # exported with a dynamic history axis
    time_dim.dim_value = scorer.max_len  # as versions exported before it had one
    onnx.save(fixed, str(tmp_path / "fixed.onnx"))
    padded = Scorer(tiny_version, session_for(tmp_path / "fixed.onnx"), "cpu", "fp32")
    np.testing.assert_allclose(padded.score(hist, cand), want, atol=1e-4)


def test_estimated_items_are_scored_from_their_rows(tiny_version) -> None:
    """A new item gets the next index; scores read its row; trained rows never change."""
    s = Scorer.load(tiny_version, device="cpu", variant="fp32")
    model = load_checkpoint(tiny_version.path / "model.pt")
    trained = s.num_items
    assert s.extendable and s.trained_items == trained
    hist, cand = random_batch(s, 4, s.max_len, 6)       # trained items only
    twin = s.item_vectors(np.array([3]))                 # the new item gets item 3's vector
    (index,) = s.set_estimates(["brand-new"], twin)
    assert index == trained + 1 and s.num_items == trained + 1 and s.item_index("brand-new") == index
    assert s.item_ids(np.array([index, 3])) == ["brand-new", tiny_version.item_ids[2]]
    cand[:, 0], cand[:, 1] = index, 3
    scores = s.score(hist, cand)
    np.testing.assert_allclose(scores[:, 0], scores[:, 1], atol=1e-5)   # same vector, same score
    hist_new, hist_old = hist.copy(), hist.copy()
    hist_new[:, -1], hist_old[:, -1] = index, 3
    np.testing.assert_allclose(s.score(hist_new, cand), s.score(hist_old, cand), atol=1e-5)
    with torch.no_grad():   # known items still score as the trained model does
        want = model.score(torch.from_numpy(hist), torch.from_numpy(cand[:, 1:])).numpy()
    np.testing.assert_allclose(scores[:, 1:], want, atol=1e-4)
    # a re-estimate moves the row; a trained item's vector is never replaced
    assert s.set_estimates(["brand-new", tiny_version.item_ids[4]], np.zeros((2, twin.shape[1]))) == [index, 5]
    assert not s.item_vectors(np.array([index])).any() and s.item_vectors(np.array([5])).any()
    many = [f"new-{i}" for i in range(100)]                    # the table grows past its spare rows
    assert s.set_estimates(many, np.ones((100, twin.shape[1])))[-1] == trained + 101
    assert s.score(np.array([[trained + 101]]), np.array([[trained + 101, 1]])).shape == (1, 2)
    near = s.nearest_items(np.array([trained + 101]), 3)       # an estimate's neighbours: trained items
    assert (near >= 1).all() and (near <= trained).all()
    with pytest.raises(ScorerError, match="estimates must be"):
        s.set_estimates(["x"], np.zeros((2, 3)))


def test_a_graph_with_the_table_inside_cannot_be_extended(tiny_version, tmp_path) -> None:
    """Versions exported before the table was an input still score, but refuse estimates."""
    import onnx
    from onnx import numpy_helper

    from reckon.models.serving.runtime import session_for

    graph = onnx.load(str(tiny_version.onnx_path("fp32")))
    table = np.load(tiny_version.path / "item_emb.npy")
    graph.graph.initializer.append(numpy_helper.from_array(table, "item_table"))
    inputs = [i for i in graph.graph.input if i.name != "item_table"]
    del graph.graph.input[:]
    graph.graph.input.extend(inputs)
    onnx.save(graph, str(tmp_path / "inside.onnx"))
    old = Scorer(tiny_version, session_for(tmp_path / "inside.onnx"), "cpu", "fp32")
    new = Scorer.load(tiny_version, device="cpu", variant="fp32")
    hist, cand = random_batch(new, 3, new.max_len, 5)
    assert not old.extendable
    np.testing.assert_allclose(old.score(hist, cand), new.score(hist, cand), atol=1e-6)
    with pytest.raises(ScorerError, match="re-export"):
        old.set_estimates(["x"], np.zeros((1, table.shape[1])))


def _proc_cpu_seconds(tids: set[int]) -> float:
    """utime + stime of these threads as the kernel reports them in /proc (clock ticks)."""
    total = 0
    for tid in tids:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def test_a_call_counts_the_cpu_of_the_threads_that_ran_it(tiny_version) -> None:
    """Two intra-op threads: the scoring thread and one pool thread, both named reckon-onnx;
    what `usage` sums equals what /proc says those threads used, while a busy thread of the
    same process (hashing without the GIL) adds nothing to it."""
    s = Scorer.load(tiny_version, device="cpu", variant="fp32", threads=2)
    assert len(s.pool_threads) == 1
    hist, cand = random_batch(s, 256, s.max_len, 200)
    s.score(hist, cand)                                   # the scoring thread exists from here on
    named = {int(t) for t in os.listdir("/proc/self/task")
             if Path(f"/proc/self/task/{t}/comm").read_text().strip() == THREAD_NAME}
    assert set(s.pool_threads) < named
    stop = threading.Event()

    def busy() -> None:
        block = b"x" * 1_000_000
        while not stop.is_set():
            hashlib.sha256(block).digest()

    other = threading.Thread(target=busy)
    other.start()
    try:
        usage = DeviceUsage()
        before, process_before = _proc_cpu_seconds(named), time.process_time()
        while usage.cpu_seconds < 1.5:
            s.score(hist, cand, usage=usage)
        outside, process = _proc_cpu_seconds(named) - before, time.process_time() - process_before
    finally:
        stop.set()
        other.join()
    assert usage.device_seconds == usage.cpu_seconds                # on CPU, device time is that CPU
    assert abs(usage.cpu_seconds - outside) <= 0.05 + 0.03 * outside   # /proc counts in 10 ms ticks
    assert process > usage.cpu_seconds + 0.2                        # the busy thread ran meanwhile
