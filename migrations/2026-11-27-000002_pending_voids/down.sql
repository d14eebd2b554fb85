DROP TABLE pending_voids;
