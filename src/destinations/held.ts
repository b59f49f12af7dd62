/**
 * Events held behind a destination's open circuit breaker (src/destinations): an open
 * breaker defers its events without using their attempts, so on its own an outage of any
 * length holds them forever. These queries find and end the holds that lasted too long.
 *
 * "Held" needs no record of its own: an event that matches the destination's filter, is
 * waiting (pending with a due time), was stored before `since`, while the breaker has been
 * open (or probing) since before `since`, has waited behind it at least since `since`.
 * The destination's filter - globs on type and source - is the same test as
 * src/destinations/runtime.ts makes, as LIKE patterns; a replay copy aimed at another
 * trigger (meta.replay_target) does not wait for this destination.
 */
import { and, asc, inArray, isNotNull, lt, type SQL, sql } from "drizzle-orm";
import { envelopeFields } from "../backends/history-writes";
import type { Destination } from "../config/destination-specs";
import type { Db } from "../db/client";
import { events } from "../db/schema";
import { type EventEnvelope, envelopeFrom } from "../events/envelope";

/** A glob of a destination filter ("order.*") as a LIKE pattern ("order.%"). */
export function likePattern(glob: string): string {
  return glob.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, "%");
}

/** Waiting events the destination's filter selects. */
function waitingFor(d: Pick<Destination, "name" | "filter">): SQL {
  const types = d.filter.types.map(likePattern);
  const sources = d.filter.sources.map(likePattern);
  return and(
    sql`${events.status} = 'pending'`,
    isNotNull(events.nextRetryAt),
    types.length ? sql`${events.type} LIKE ANY(${sql.param(types)}::text[])` : undefined,
    sources.length ? sql`${events.source} LIKE ANY(${sql.param(sources)}::text[])` : undefined,
    sql`(NOT (${events.meta} ? 'replay_target')
         OR ${events.meta} ->> 'replay_target' IN (${d.name}, ${`destination ${d.name}`}))`,
  )!;
}

export interface HeldDeadLetter {
  event: EventEnvelope;
  attempts: number;
}

/**
 * Moves up to `limit` events held behind `d` since before `since` to the DLQ with `reason`
 * (appended to their errors, as an attempt's error would be). SKIP LOCKED and the status
 * check keep it apart from consumers: an event claimed meanwhile is theirs.
 */
export async function deadLetterHeld(
  db: Db,
  d: Pick<Destination, "name" | "filter">,
  o: { since: Date; now: Date; reason: string; limit: number },
): Promise<HeldDeadLetter[]> {
  const now = o.now.toISOString();
  const rows = await db
    .update(events)
    .set({
      status: "dlq",
      lastError: o.reason,
      errors: sql`${events.errors} || jsonb_build_array(jsonb_build_object('attempt', ${events.attempts}, 'error', ${o.reason}::text, 'at', ${now}::text))`,
      nextRetryAt: null,
      processedAt: o.now,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        sql`${events.status} = 'pending'`,
        inArray(
          events.id,
          db
            .select({ id: events.id })
            .from(events)
            .where(and(waitingFor(d), lt(events.createdAt, o.since)))
            .limit(o.limit)
            .for("update", { skipLocked: true }),
        ),
      ),
    )
    .returning({ ...envelopeFields, attempts: events.attempts });
  return rows.map((r) => ({ event: envelopeFrom(r), attempts: r.attempts }));
}

/** The event waiting longest behind `d` (stored first), or null: for health. */
export async function oldestHeld(
  db: Db,
  d: Pick<Destination, "name" | "filter">,
): Promise<{ id: string; storedAt: Date } | null> {
  const [row] = await db
    .select({ id: events.id, storedAt: events.createdAt })
    .from(events)
    .where(waitingFor(d))
    .orderBy(asc(events.createdAt))
    .limit(1);
  return row ?? null;
}
