-- The 95 % Wilson score interval of a proportion k / n (z = 1.96), the one definition every
-- rate with an interval uses (the online_quality view's readers: `reckon costs`, `reckon
-- model list`, Grafana). Unlike p +- 1.96 sqrt(p(1 - p) / n) it stays inside [0, 1] and
-- is not degenerate at k = 0, which small arms hit. NULL when n = 0. Functions are global to
-- a server, hence the prefix.
CREATE FUNCTION IF NOT EXISTS reckon_wilson_low AS (k, n) ->
    if(n = 0, NULL, (k / n + 1.9208 / n - 1.96 * sqrt((k / n) * (1 - k / n) / n + 0.9604 / (n * n))) / (1 + 3.8416 / n));

CREATE FUNCTION IF NOT EXISTS reckon_wilson_high AS (k, n) ->
    if(n = 0, NULL, (k / n + 1.9208 / n + 1.96 * sqrt((k / n) * (1 - k / n) / n + 0.9604 / (n * n))) / (1 + 3.8416 / n))
