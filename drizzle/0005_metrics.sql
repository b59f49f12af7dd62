CREATE TABLE "metrics_counters" (
	"series" text PRIMARY KEY NOT NULL,
	"value" double precision DEFAULT 0 NOT NULL
);
