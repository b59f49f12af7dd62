/**
 * Postgres schema (Drizzle). The system of record for event history, status, DLQ and replay.
 * Change it here, then `npm run db:generate` to write a migration under drizzle/.
 */
import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgEnum, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

export const eventStatus = pgEnum("event_status", ["pending", "processing", "completed", "dlq"]);
export type EventStatus = (typeof eventStatus.enumValues)[number];

export const events = pgTable(
  "events",
  {
    id: uuid("id").primaryKey(),
    type: text("type").notNull(),
    source: text("source").notNull(),
    /** The event's own time (UTC), from the envelope. */
    timestamp: timestamp("timestamp", { withTimezone: true, mode: "date" }).notNull(),
    /** The event's typed fields (everything in the envelope but id/type/source/timestamp/meta). */
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    meta: jsonb("meta").$type<Record<string, unknown>>().notNull(),
    /** Scope key: events sharing it are handled one at a time. */
    scope: text("scope").notNull(),
    status: eventStatus("status").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    /** Every failed attempt's error, oldest first: [{attempt, error, at}]. */
    errors: jsonb("errors").$type<Array<{ attempt: number; error: string; at: string }>>().notNull().default(sql`'[]'::jsonb`),
    nextRetryAt: timestamp("next_retry_at", { withTimezone: true, mode: "date" }),
    /** Consumer (invocation) that holds the event while it is 'processing'; settle only applies for it. */
    claimedBy: text("claimed_by"),
    /**
     * Set when the claim came from Postgres (a due retry) rather than from a stream: the claim
     * expires then and another consumer may take the event over. NULL for stream claims, whose
     * lease is the stream's pending-entries list (XAUTOCLAIM after VISIBILITY_TIMEOUT_MS).
     */
    leaseUntil: timestamp("lease_until", { withTimezone: true, mode: "date" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    processedAt: timestamp("processed_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [
    // claims and retries: "pending and due", "processing for too long"
    index("events_status_next_retry_idx").on(t.status, t.nextRetryAt),
    // history, replay: keyset pagination on (timestamp, id), optionally by type/source
    index("events_timestamp_id_idx").on(t.timestamp, t.id),
    index("events_type_timestamp_idx").on(t.type, t.timestamp),
    index("events_source_timestamp_idx").on(t.source, t.timestamp),
    // expired Postgres-side claims (a consumer died while handling a due retry)
    index("events_lease_until_idx").on(t.leaseUntil).where(sql`${t.leaseUntil} IS NOT NULL`),
    // the DLQ list is small but read often
    index("events_dlq_idx").on(t.updatedAt).where(sql`${t.status} = 'dlq'`),
  ],
);

export type EventRow = typeof events.$inferSelect;
export type NewEventRow = typeof events.$inferInsert;
