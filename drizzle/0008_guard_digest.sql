ALTER TABLE "webhook_deliveries" ADD COLUMN "digest" text;--> statement-breakpoint
-- Raised by the guarded publish (src/backends/postgres/guarded.ts) when a guard key it did
-- not see in its snapshot was recorded concurrently: the whole statement rolls back, and the
-- publisher runs it again, now seeing that key.
CREATE OR REPLACE FUNCTION reflex_guard_raced(k text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'guard key % was recorded concurrently', k USING ERRCODE = 'RX001';
END $$;
