"""A running worker: the Faust app that wires the pipeline to Kafka, cost accounting in
the worker (intervals, sink, alerts, `GET /costs`), retrains in the store's owner
(scheduled, `POST /retrain`), Prometheus metrics, and starting the embedded stack and
worker processes.

May import: every `streams` subpackage below it except `cli`, and `reckon.models`.
"""
