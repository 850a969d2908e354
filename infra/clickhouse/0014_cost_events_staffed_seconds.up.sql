-- People and ops are charged per staffed worker-second. From here on only `shared` rows carry
-- any (a worker's whole interval); rows stored before this carried them on their wall time,
-- workload and shared alike, which the default reproduces so re-pricing old rows is unchanged.
ALTER TABLE cost_events
    ADD COLUMN IF NOT EXISTS staffed_seconds Float64 DEFAULT if(kind = 'idle', 0, wall_seconds) AFTER ram_gb_seconds
