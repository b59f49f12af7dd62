/**
 * What a drain costs the events table, for bench/drain.ts: rows written (inserts, updates,
 * the HOT share) and index entries written per event, as deltas over a run, and the raw
 * ceiling - this machine inserting the same rows into a table with the same indexes and
 * nothing else (one multi-row INSERT ... SELECT FROM unnest() per batch).
 *
 * Row counts come from pg_stat_user_tables; index blocks touched from pg_statio_user_indexes.
 * Index entries come from the WAL (pg_waldump over the run's LSN range, records of each
 * index's relation: B-tree leaf inserts, posting-list inserts and leaf splits, BRIN
 * updates): the catalogue keeps no count of them, and counting an index's items afterwards
 * misses what deduplication merged and bottom-up deletion removed. They need the server's
 * pg_wal readable here (the local Postgres); otherwise they print as "n/a".
 * Counters reach the statistics when a backend commits and goes idle (or exits), so
 * snapshot() waits until two reads agree.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import pg from "pg";

export interface WriteSnapshot {
  ins: number;
  upd: number;
  hot: number;
  /** Index blocks touched, per index. */
  blocks: Map<string, number>;
  /** WAL insert position, and where to read the WAL (null: not readable from here). */
  lsn: string;
  walDir: string | null;
  /** relfilenode -> relation name, for the table and its indexes. */
  rels: Map<string, string>;
  table: string;
}

async function readOnce(c: pg.Client, table: string) {
  const t = await c.query<{ ins: string; upd: string; hot: string }>(
    `SELECT n_tup_ins::text AS ins, n_tup_upd::text AS upd, n_tup_hot_upd::text AS hot
       FROM pg_stat_user_tables WHERE relname = $1`,
    [table],
  );
  const ix = await c.query<{ name: string; blocks: string }>(
    `SELECT indexrelname AS name, (idx_blks_hit + idx_blks_read)::text AS blocks
       FROM pg_statio_user_indexes WHERE relname = $1 ORDER BY 1`,
    [table],
  );
  const x = t.rows[0];
  return {
    ins: Number(x?.ins ?? 0),
    upd: Number(x?.upd ?? 0),
    hot: Number(x?.hot ?? 0),
    blocks: new Map(ix.rows.map((r) => [r.name, Number(r.blocks)])),
  };
}

/** The table's write counters once they have settled (see the module comment), and the WAL position. */
export async function snapshot(url: string, table = "events"): Promise<WriteSnapshot> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    let prev = await readOnce(c, table);
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 250));
      const next = await readOnce(c, table);
      if (next.ins === prev.ins && next.upd === prev.upd && next.hot === prev.hot) break;
      prev = next;
    }
    const w = await c.query<{ lsn: string; dir: string }>(
      "SELECT pg_current_wal_flush_lsn()::text AS lsn, current_setting('data_directory') AS dir",
    );
    const rels = await c.query<{ node: string; name: string }>(
      `SELECT pg_relation_filenode(c.oid)::text AS node, c.relname AS name FROM pg_class c
        WHERE c.oid = $1::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1::regclass)`,
      [table],
    );
    const dir = `${w.rows[0]?.dir}/pg_wal`;
    return {
      ...prev,
      lsn: w.rows[0]?.lsn ?? "0/0",
      walDir: existsSync(dir) ? dir : null,
      rels: new Map(rels.rows.map((r) => [r.node, r.name])),
      table,
    };
  } finally {
    await c.end();
  }
}

const WALDUMP = "/usr/lib/postgresql/15/bin/pg_waldump";
/** Records that add an entry to an index (a leaf split carries the item that caused it). */
const ENTRY = /^(INSERT_LEAF|INSERT_POST|SPLIT_L|SPLIT_R|INSERT|UPDATE|SAMEPAGE_UPDATE)\b/;

/** Entries written per relation (and WAL bytes of the table and its indexes) between two snapshots. */
async function walCounts(a: WriteSnapshot, b: WriteSnapshot) {
  const entries = new Map<string, number>();
  let bytes = 0;
  if (!a.walDir || !existsSync(WALDUMP) || a.lsn === b.lsn) return null;
  const p = spawn(WALDUMP, ["-p", a.walDir, "-s", a.lsn, "-e", b.lsn], { stdio: ["ignore", "pipe", "ignore"] });
  const lines = createInterface({ input: p.stdout });
  const re = /^rmgr: (\w+)\s+len \(rec\/tot\):\s+\d+\/\s*(\d+),.*desc: (\S+).*?blkref #0: rel \d+\/\d+\/(\d+)/;
  for await (const line of lines) {
    const m = re.exec(line);
    if (!m) continue;
    const [, rmgr, tot, desc, node] = m;
    const name = b.rels.get(node!) ?? a.rels.get(node!);
    if (!name) continue;
    bytes += Number(tot);
    if ((rmgr === "Btree" || rmgr === "BRIN") && ENTRY.test(desc!)) entries.set(name, (entries.get(name) ?? 0) + 1);
  }
  await new Promise((r) => p.on("close", r));
  return { entries, bytes };
}

export interface WriteFigures {
  rowsPerEvent: number;
  insPerEvent: number;
  updPerEvent: number;
  hotShare: number;
  /** null: the WAL was not readable. */
  entriesPerEvent: number | null;
  walBytesPerEvent: number | null;
  blocksPerEvent: number;
  perIndex: Array<{ name: string; entries: number | null; blocks: number }>;
}

/** Deltas between two snapshots, per event. */
export async function writeFigures(a: WriteSnapshot, b: WriteSnapshot, n: number): Promise<WriteFigures> {
  const ins = b.ins - a.ins;
  const upd = b.upd - a.upd;
  const hot = b.hot - a.hot;
  const wal = await walCounts(a, b);
  const perIndex = [...b.blocks].map(([name, x]) => ({
    name,
    entries: wal ? (wal.entries.get(name) ?? 0) / n : null,
    blocks: (x - (a.blocks.get(name) ?? 0)) / n,
  }));
  return {
    rowsPerEvent: (ins + upd) / n,
    insPerEvent: ins / n,
    updPerEvent: upd / n,
    hotShare: upd ? hot / upd : 0,
    entriesPerEvent: wal ? perIndex.reduce((s, x) => s + (x.entries ?? 0), 0) : null,
    walBytesPerEvent: wal ? wal.bytes / n : null,
    blocksPerEvent: perIndex.reduce((s, x) => s + x.blocks, 0),
    perIndex,
  };
}

const f = (n: number | null, d = 2) =>
  n === null ? "n/a" : n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

export function formatFigures(label: string, w: WriteFigures): string {
  const per = w.perIndex
    .filter((x) => (x.entries ?? 0) > 0.005)
    .map((x) => `${x.name.replace(/^events_/, "").replace(/_idx$/, "")} ${f(x.entries)}`)
    .join(", ");
  return (
    `${label}: rows written/event ${f(w.rowsPerEvent)} (ins ${f(w.insPerEvent)}, upd ${f(w.updPerEvent)}, ` +
    `HOT ${f(w.hotShare * 100, 0)}% of upd) | index entries/event ${f(w.entriesPerEvent)} [${per}] | ` +
    `index blocks touched/event ${f(w.blocksPerEvent, 1)} | WAL bytes/event ${f(w.walBytesPerEvent, 0)}`
  );
}

/** One history row in its final form, as the ceiling inserts it. */
export interface CeilingRow {
  id: string;
  type: string;
  source: string;
  timestamp: string;
  payload: string;
  meta: string;
}

/**
 * Inserts `rows` as completed history into a copy of the events table (LIKE ... INCLUDING
 * ALL: the same columns, defaults and indexes), `batch` rows per statement, one connection,
 * autocommit; answers rows per second. The copy is dropped after.
 */
export async function insertCeiling(url: string, rows: CeilingRow[], batch: number): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const table = "events_ceiling";
  try {
    await c.query(`DROP TABLE IF EXISTS ${table}`);
    await c.query(`CREATE TABLE ${table} (LIKE events INCLUDING ALL)`);
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += batch) {
      const b = rows.slice(i, i + batch);
      await c.query(
        `INSERT INTO ${table} (id, type, source, "timestamp", payload, meta, scope, status, attempts, processed_at)
         SELECT v.id, v.type, v.source, v.ts, v.payload::jsonb, v.meta::jsonb, v.source, 'completed', 1, now()
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
             AS v(id, type, source, ts, payload, meta)`,
        [
          b.map((r) => r.id),
          b.map((r) => r.type),
          b.map((r) => r.source),
          b.map((r) => r.timestamp),
          b.map((r) => r.payload),
          b.map((r) => r.meta),
        ],
      );
    }
    return rows.length / ((performance.now() - t0) / 1000);
  } finally {
    await c.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await c.end();
  }
}
