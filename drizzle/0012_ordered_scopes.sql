CREATE TABLE "ordered_events" (
	"scope" text NOT NULL,
	"event_id" uuid NOT NULL,
	"arrival" text NOT NULL,
	"lane" text,
	"hold" boolean DEFAULT false NOT NULL,
	"parked_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "ordered_events_scope_event_id_pk" PRIMARY KEY("scope","event_id")
);
--> statement-breakpoint
CREATE INDEX "ordered_events_arrival_idx" ON "ordered_events" USING btree ("scope","arrival","event_id");--> statement-breakpoint
CREATE INDEX "ordered_events_event_idx" ON "ordered_events" USING btree ("event_id");--> statement-breakpoint
CREATE INDEX "ordered_events_parked_idx" ON "ordered_events" USING btree ("scope") WHERE "ordered_events"."parked_at" IS NOT NULL;