CREATE TYPE "public"."step_status" AS ENUM('completed', 'failed');--> statement-breakpoint
CREATE TABLE "steps" (
	"event_id" uuid NOT NULL,
	"trigger" text NOT NULL,
	"name" text NOT NULL,
	"status" "step_status" NOT NULL,
	"result" jsonb,
	"error" text,
	"derived" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"usage" jsonb,
	"attempt" integer NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"duration_ms" integer NOT NULL,
	CONSTRAINT "steps_event_id_trigger_name_pk" PRIMARY KEY("event_id","trigger","name")
);
