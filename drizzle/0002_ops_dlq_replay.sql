CREATE TYPE "public"."replay_status" AS ENUM('scheduled', 'running', 'done', 'cancelled', 'failed');--> statement-breakpoint
ALTER TYPE "public"."event_status" ADD VALUE 'discarded';--> statement-breakpoint
CREATE TABLE "ops_state" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "replay_jobs" (
	"id" uuid PRIMARY KEY NOT NULL,
	"status" "replay_status" DEFAULT 'scheduled' NOT NULL,
	"from_ts" timestamp with time zone NOT NULL,
	"to_ts" timestamp with time zone NOT NULL,
	"types" text[],
	"sources" text[],
	"status_filter" "event_status",
	"target" text,
	"dry_run" boolean DEFAULT false NOT NULL,
	"rate" integer NOT NULL,
	"start_at" timestamp with time zone DEFAULT now() NOT NULL,
	"cursor_ts" timestamp with time zone,
	"cursor_id" uuid,
	"scanned" bigint DEFAULT 0 NOT NULL,
	"republished" bigint DEFAULT 0 NOT NULL,
	"total_estimate" bigint,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "discard_reason" text;--> statement-breakpoint
CREATE INDEX "replay_jobs_runnable_idx" ON "replay_jobs" USING btree ("status","start_at");--> statement-breakpoint
CREATE INDEX "events_causation_idx" ON "events" USING btree (("meta" ->> 'causation_id'));