"""`reckon`: the command line (`main`), `reckon costs`, and `reckon demo`.

May import: anything in `reckon.streams` and `reckon.models`; `reckon.bench` only lazily,
when a `reckon bench` command runs.
"""
