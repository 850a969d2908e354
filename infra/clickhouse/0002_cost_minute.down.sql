DROP VIEW IF EXISTS cost_minute_mv;
DROP TABLE IF EXISTS cost_minute
