"""A running worker: the Faust app that wires the pipeline to Kafka, cost accounting in
the worker (intervals, sink, alerts, `GET /costs`), retrains in the store's owner
(scheduled, `POST /retrain`), Prometheus metrics, starting the embedded stack and
worker processes, and the read replica of the recommendations (`reckon serve`).

May import: every `streams` subpackage below it except `cli`, and `reckon.models`.
"""
