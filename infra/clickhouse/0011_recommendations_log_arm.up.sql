-- The A/B arm that served each recommendation: 'primary' (the promoted version) or
-- 'challenger' (RECKON_AB_VERSION's share of users). A version can serve in either arm over
-- time, so online quality per arm cannot be read from the version. '' = not recorded
-- (rows from before this column, messages from older workers).
ALTER TABLE recommendations_log ADD COLUMN IF NOT EXISTS arm LowCardinality(String) DEFAULT '' AFTER model_version
