"""Deployment files, installed with the wheel as package data: ClickHouse migrations
(`clickhouse/NNNN_name.up.sql` / `.down.sql`) and Grafana provisioning. No code."""
