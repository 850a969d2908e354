"""Benchmarks behind `reckon bench ...` and `reckon chaos`; imported only when one runs.

May import anything in `reckon.streams` and `reckon.models`; nothing imports it but the CLI.
"""
