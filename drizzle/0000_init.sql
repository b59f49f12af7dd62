CREATE TYPE "public"."event_status" AS ENUM('pending', 'processing', 'completed', 'dlq');--> statement-breakpoint
CREATE TABLE "events" (
	"id" uuid PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"source" text NOT NULL,
	"timestamp" timestamp with time zone NOT NULL,
	"payload" jsonb NOT NULL,
	"meta" jsonb NOT NULL,
	"scope" text NOT NULL,
	"status" "event_status" DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"next_retry_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"processed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "events_status_next_retry_idx" ON "events" USING btree ("status","next_retry_at");--> statement-breakpoint
CREATE INDEX "events_timestamp_id_idx" ON "events" USING btree ("timestamp","id");--> statement-breakpoint
CREATE INDEX "events_type_timestamp_idx" ON "events" USING btree ("type","timestamp");--> statement-breakpoint
CREATE INDEX "events_source_timestamp_idx" ON "events" USING btree ("source","timestamp");--> statement-breakpoint
CREATE INDEX "events_dlq_idx" ON "events" USING btree ("updated_at") WHERE "events"."status" = 'dlq';