ALTER TABLE recommendations_log DROP COLUMN IF EXISTS arm
