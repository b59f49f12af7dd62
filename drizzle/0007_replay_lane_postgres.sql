DROP INDEX "events_fresh_idx";--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "lane" text;--> statement-breakpoint
CREATE INDEX "events_fresh_lane_idx" ON "events" USING btree ("lane","created_at","timestamp") WHERE "events"."status" = 'pending' AND "events"."next_retry_at" IS NULL AND "events"."lane" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "events_fresh_idx" ON "events" USING btree ("created_at","timestamp") WHERE "events"."status" = 'pending' AND "events"."next_retry_at" IS NULL AND "events"."lane" IS NULL;