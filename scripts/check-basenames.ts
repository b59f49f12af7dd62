/**
 * One name per concept: fails when two files under src/ share a base name (the file name
 * without its extension) unless they are listed below with the reason they may. A listing
 * names its exact files, so a third file with the same name fails too. Run by `npm run lint`.
 *
 *   node --import tsx scripts/check-basenames.ts
 */
import { readdirSync } from "node:fs";
import { basename, extname, join } from "node:path";

/** Names any folder may use for its own module of that kind. */
const CONVENTIONS: Record<string, string> = {
  index: "a folder's entry module",
};

/** Names shared by files of one concern, one per backend, store or folder. */
const SAME_CONCERN: Record<string, { files: string[]; why: string }> = {
  store: {
    files: ["src/backends/postgres/store.ts", "src/backends/redis/store.ts"],
    why: "each backend's EventStore",
  },
  locks: {
    files: ["src/backends/postgres/locks.ts", "src/backends/redis/locks.ts"],
    why: "each backend's ScopeLocks",
  },
  "filter-state": {
    files: ["src/backends/postgres/filter-state.ts", "src/backends/redis/filter-state.ts"],
    why: "each backend's FilterState",
  },
  "metrics-sink": {
    files: ["src/backends/postgres/metrics-sink.ts", "src/backends/redis/metrics-sink.ts"],
    why: "each backend's metrics sink",
  },
  client: {
    files: ["src/backends/redis/client.ts", "src/db/client.ts"],
    why: "the connection to each store, Redis and Postgres",
  },
  types: {
    files: ["src/backends/types.ts", "src/ingest/signatures/types.ts"],
    why: "the interfaces a folder's implementations fulfil (backends, signature schemes)",
  },
  routes: {
    files: ["src/admin/routes.ts", "src/dashboard/routes.tsx", "src/health/routes.ts", "src/obs/routes.ts"],
    why: "a surface folder's HTTP routes",
  },
  "in-flight": {
    files: ["src/backends/redis/scripts/in-flight.lua", "src/operations/in-flight.ts"],
    why: "events in flight: the Redis script reading a lane's pending entries, the admin view on it",
  },
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).split("\\").join("/"))
    .sort();
}

const byName = new Map<string, string[]>();
for (const file of filesUnder("src")) {
  const name = basename(file, extname(file));
  byName.set(name, [...(byName.get(name) ?? []), file]);
}

const allowed = (name: string): string[] | undefined => SAME_CONCERN[name]?.files;
const failures: string[] = [];
for (const [name, files] of byName) {
  if (files.length < 2 || name in CONVENTIONS) continue;
  const listed = allowed(name);
  const extra = files.filter((f) => !listed?.includes(f));
  if (extra.length > 0) failures.push(`"${name}": ${files.join(", ")} (not listed: ${extra.join(", ")})`);
}
for (const name of Object.keys(SAME_CONCERN)) {
  if ((byName.get(name)?.length ?? 0) < 2) {
    console.warn(`check-basenames: "${name}" no longer names two files; drop it from scripts/check-basenames.ts`);
  }
}

if (failures.length > 0) {
  console.error("Files under src/ sharing a base name: give each a name that says what it holds,");
  console.error("or list same-concern twins in scripts/check-basenames.ts.");
  for (const f of failures) console.error(`  ${f}`);
  process.exit(1);
}
