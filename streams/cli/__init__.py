"""`reckon`: the command line (`main`), `reckon costs`, `reckon retrain`, and `reckon demo`
(with `--drift --retrain`, the training loop).

May import: anything in `reckon.streams` and `reckon.models`; `reckon.bench` only lazily,
when a `reckon bench` command runs.
"""
