ALTER TABLE "events" ADD COLUMN "claimed_by" text;--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "lease_until" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "events_lease_until_idx" ON "events" USING btree ("lease_until") WHERE "events"."lease_until" IS NOT NULL;