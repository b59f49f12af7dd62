CREATE TABLE "filter_state" (
	"key" text PRIMARY KEY NOT NULL,
	"members" text[] DEFAULT '{}'::text[] NOT NULL,
	"first_id" text,
	"window_ends_ms" bigint,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "wake_gate" (
	"name" text PRIMARY KEY NOT NULL,
	"open_until" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"key" text PRIMARY KEY NOT NULL,
	"event_id" uuid NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "filter_state_expires_idx" ON "filter_state" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_expires_idx" ON "webhook_deliveries" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "events_fresh_idx" ON "events" USING btree ("created_at","timestamp") WHERE "events"."status" = 'pending' AND "events"."next_retry_at" IS NULL;