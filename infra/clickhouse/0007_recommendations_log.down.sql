DROP TABLE IF EXISTS recommendations_log
