DROP VIEW IF EXISTS online_quality
