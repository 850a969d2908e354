import numpy as np

from reckon.models.serving.coldstart import estimate_vectors


def test_estimate_is_the_sharpened_weighted_direction_at_the_neighbours_length() -> None:
    vectors = np.array([[[3.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])    # (1 item, 3 neighbours, H=2)
    weights = np.array([[3.0, 1.0, 0.0]])                          # the third slot is empty
    (got,) = estimate_vectors(vectors, weights)
    mean = 81 * np.array([3.0, 0.0]) + np.array([0.0, 1.0])          # weights to the 4th power
    assert np.allclose(got / np.linalg.norm(got), mean / np.linalg.norm(mean), atol=1e-6)
    assert np.isclose(np.linalg.norm(got), (81 * 3.0 + 1 * 1.0) / 82)   # not shrunk by averaging
    assert got.dtype == np.float32


def test_one_neighbour_is_copied_and_no_evidence_gives_zero() -> None:
    vectors = np.array([[[1.0, 2.0], [0.0, 0.0]], [[5.0, 5.0], [1.0, 1.0]]])
    got = estimate_vectors(vectors, np.array([[0.5, 0.0], [0.0, 0.0]]))
    assert np.allclose(got[0], [1.0, 2.0]) and not got[1].any()
