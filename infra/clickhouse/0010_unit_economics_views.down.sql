DROP VIEW IF EXISTS cost_per_attributed_click;
DROP VIEW IF EXISTS attributed_clicks;
DROP VIEW IF EXISTS idle_share;
DROP VIEW IF EXISTS cost_per_1k_recs;
DROP VIEW IF EXISTS cost_by_dims
