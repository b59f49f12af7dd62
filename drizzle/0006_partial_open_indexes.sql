DROP INDEX "events_status_next_retry_idx";--> statement-breakpoint
DROP INDEX "events_causation_idx";--> statement-breakpoint
CREATE INDEX "events_status_next_retry_idx" ON "events" USING btree ("status","next_retry_at") WHERE "events"."status" IN ('pending', 'processing');--> statement-breakpoint
CREATE INDEX "events_causation_idx" ON "events" USING btree (("meta" ->> 'causation_id')) WHERE ("events"."meta" ->> 'causation_id') IS NOT NULL;