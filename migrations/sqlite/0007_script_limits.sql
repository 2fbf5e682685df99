-- Per-script run limits set at deploy (NULL: the server's defaults).
ALTER TABLE scripts ADD COLUMN timeout_ms INTEGER;
ALTER TABLE scripts ADD COLUMN memory_bytes INTEGER;
ALTER TABLE scripts ADD COLUMN output_bytes INTEGER;
