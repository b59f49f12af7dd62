/**
 * Building blocks for the statements kept as `sql` templates (CTEs, unnest, SKIP LOCKED
 * claims, ON CONFLICT upserts with a WHERE): they name tables, columns and enum types only
 * through the schema's objects (`${events}`, `${events.status}`, `${eventStatus}`), so a
 * column renamed in schema.ts fails `tsc` or reaches every statement that uses it.
 */
import { Column, type GetColumnData, getTableColumns, is, type SQL, sql, type Table } from "drizzle-orm";

/**
 * A column's bare name ("status"). `${events.status}` renders "events"."status", which
 * Postgres refuses where it takes a column of the target table by name alone: SET targets,
 * INSERT column lists and ON CONFLICT targets (and EXCLUDED.<name>).
 */
export const bare = (c: Column): SQL => sql`${sql.identifier(c.name)}`;

/**
 * A SET list by the table's TS keys (`"status" = ..., "attempts" = ...`, in the order given):
 * SQL values go in as they are, others as parameters.
 */
export function assign<T extends Table>(
  table: T,
  values: Partial<Record<keyof T["_"]["columns"], SQL | string | number | boolean | null>>,
): SQL {
  const cols: Record<string, Column> = getTableColumns(table);
  return sql.join(
    Object.entries(values).map(([k, v]) => sql`${bare(cols[k]!)} = ${v}`),
    sql`, `,
  );
}

/** Bare names, comma separated: an INSERT column list. */
export const columnNames = (...cs: Column[]): SQL => sql.join(cs.map(bare), sql`, `);

/** `excluded.<name>` in ON CONFLICT DO UPDATE: the value the conflicting INSERT proposed. */
export const excluded = (c: Column): SQL => sql`excluded.${bare(c)}`;

/** `values` as ONE array parameter of the column's type (an IN list would take one parameter per value). */
export const arrayOf = (c: Column, values: unknown[]): SQL => sql`${sql.param(values)}::${sql.raw(c.getSQLType())}[]`;

/** `c = ANY(values)`, with the values as one array parameter. */
export const anyOf = (c: Column, values: unknown[]): SQL => sql`${c} = ANY(${arrayOf(c, values)})`;

/**
 * A timestamptz column as ISO 8601 UTC text with microseconds: a keyset cursor must keep
 * them, and a JS Date stops at milliseconds.
 */
export const isoMicros = <C extends Column>(col: C) =>
  sql<
    C["_"]["notNull"] extends true ? string : string | null
  >`to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

type Field = Column | SQL<unknown>;

/**
 * A UNION ALL branch's list in the shape of `shape`: `own`'s fields where given, a NULL of the
 * column's type elsewhere, in `shape`'s order (UNION matches columns by position). Read
 * with `selection(shape)`, a padded field is null whatever its column's type says.
 */
export function padded<S extends Record<string, Column>>(shape: S, own: Partial<Record<keyof S, Field>>): SQL {
  return sql.join(
    Object.entries(shape).map(
      ([k, c]) => sql`${own[k] ?? sql`NULL::${sql.raw(c.getSQLType())}`} AS ${sql.identifier(k)}`,
    ),
    sql`, `,
  );
}

/** A row of a selection: a column's value as the schema types it, an expression's as its `sql<T>` says. */
export type RowOf<F extends Record<string, Field>> = {
  [K in keyof F]: F[K] extends Column ? GetColumnData<F[K]> : F[K] extends SQL<infer T> ? T : never;
};

export interface Selection<F extends Record<string, Field>> {
  /** The SELECT or RETURNING list: each field `AS` its key. */
  list: SQL;
  /** One answered row, decoded. */
  read(raw: Record<string, unknown>): RowOf<F>;
}

/**
 * A SELECT or RETURNING list for a raw statement, answered under the keys of `fields`
 * (`"e"."next_retry_at" AS "nextRetryAt"`), and the reader of its rows. Columns go through
 * their own decoders, as in a query builder's select (a raw statement gets timestamps as
 * text and bigints as strings); expressions arrive as the driver gives them. Drizzle maps
 * the rows of builder queries only, hence this.
 */
export function selection<F extends Record<string, Field>>(fields: F): Selection<F> {
  const entries = Object.entries(fields);
  // Looked up once, as read() runs for every row of a batch; a column that takes values as
  // they come (text, uuid) needs no call.
  const decoders = entries.map(([k, f]) => {
    if (!is(f, Column) || f.mapFromDriverValue === Column.prototype.mapFromDriverValue) return [k, null] as const;
    // Taken once: an aliased table's column is a Proxy, slow to look a method up on per row.
    const map = f.mapFromDriverValue;
    return [k, (v: unknown) => map.call(f, v)] as const;
  });
  return {
    list: sql.join(
      entries.map(([k, f]) => sql`${f} AS ${sql.identifier(k)}`),
      sql`, `,
    ),
    read(raw) {
      const row: Record<string, unknown> = {};
      for (const [k, decode] of decoders) {
        const v = raw[k];
        row[k] = v === null || v === undefined ? null : decode ? decode(v) : v;
      }
      return row as RowOf<F>;
    },
  };
}
