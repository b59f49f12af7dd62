/**
 * `reflex`: the operator's command line for the admin API.
 *
 *   npx reflex dlq list | retry <id> | retry-all [--type] [--source] | discard <id> --reason
 *   npx reflex replay start --last 1h | --from --to [--type ...] [--source ...] [--dry-run]
 *   npx reflex replay status <id> | cancel <id> | list
 *   npx reflex events get <id> | in-flight | tail [--type]
 *   npx reflex scopes parked | unpark <scope> --retry | --discard --reason
 *   npx reflex config check [--env-file .dev.vars]   (no worker needed; exit 1 names each bad variable)
 *
 * REFLEX_URL and REFLEX_ADMIN_TOKEN say where and as whom. Human output by default,
 * --json for scripts. Exit codes: 0 ok, 1 the API said no (4xx/5xx), 2 bad usage,
 * 3 the worker could not be reached.
 */

import fs from "node:fs";
import cliProgress from "cli-progress";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { configProblems } from "../local/config-check";
import { readDevVars } from "../local/dev-vars";
import { ApiError, type Client, client, query, UnreachableError } from "./api";
import { parseDuration, table, terminalSafe, terminalSafeJson } from "./format";

interface Globals {
  url?: string;
  token?: string;
  json?: boolean;
}

type Row = Record<string, unknown>;

function out(json: boolean | undefined, data: unknown, human: () => string) {
  process.stdout.write(json ? `${terminalSafeJson(data, 2)}\n` : `${terminalSafe(human())}\n`);
}

function collect(v: string, prev: string[] = []) {
  return [...prev, v];
}

function isoTime(v: string): string {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`not a date/time: ${v}`);
  return d.toISOString();
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`not a positive integer: ${v}`);
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The event as JSON, then its durable steps and model usage as tables (when it has any). */
function eventDetail(r: Row): string {
  const { steps, usage, ...rest } = r as Row & { steps?: Row[]; usage?: Row[] };
  const parts = [JSON.stringify(rest, null, 2)];
  if (steps?.length) {
    const rows = steps.map((s) => {
      const u = s.usage as { input_tokens: number; output_tokens: number } | undefined;
      return { ...s, tokens: u ? `${u.input_tokens} in, ${u.output_tokens} out` : "" };
    });
    parts.push(`steps:\n${table(rows, ["trigger", "name", "status", "attempt", "duration_ms", "tokens", "error"])}`);
  }
  if (usage?.length) parts.push(`model usage:\n${table(usage, ["model", "calls", "input_tokens", "output_tokens"])}`);
  return parts.join("\n\n");
}

export function buildProgram(): Command {
  const program = new Command("reflex")
    .description("Operate a Reflex Edge deployment: dead-letter queue, replays, event history.")
    .option("--url <url>", "worker URL (default: $REFLEX_URL)")
    .option("--token <token>", "admin token (default: $REFLEX_ADMIN_TOKEN)")
    .option("--json", "machine-readable JSON output")
    .showHelpAfterError()
    .exitOverride();

  const api = (): Client => {
    const g = program.opts<Globals>();
    return client(g.url ?? process.env.REFLEX_URL, g.token ?? process.env.REFLEX_ADMIN_TOKEN);
  };
  const json = () => program.opts<Globals>().json;

  // ---- dlq ---------------------------------------------------------------------------
  const dlq = program.command("dlq").description("inspect and redrive the dead-letter queue");
  dlq
    .command("list")
    .description("list dead-lettered events, newest first")
    .option("--limit <n>", "how many", positiveInt, 50)
    .option("--type <type>", "only this event type")
    .option("--source <source>", "only this source")
    .action(async (o) => {
      const r = await api().call<{ count: number; events: Row[] }>(
        "GET",
        `/events/dlq${query({ limit: o.limit, type: o.type, source: o.source })}`,
      );
      out(
        json(),
        r,
        () =>
          `${r.count} event(s) in the DLQ${r.events.length < r.count ? ` (showing ${r.events.length})` : ""}\n` +
          table(r.events, ["id", "type", "source", "attempts", "last_error"]),
      );
    });
  dlq
    .command("retry <id>")
    .description("send one dead-lettered event back for processing (attempts reset)")
    .action(async (id: string) => {
      const r = await api().call<Row>("POST", `/events/dlq/${encodeURIComponent(id)}/retry`);
      out(json(), r, () => `${id}: queued for retry`);
    });
  dlq
    .command("retry-all")
    .description("retry every dead-lettered event, or those matching --type/--source")
    .option("--type <type>", "only this event type")
    .option("--source <source>", "only this source")
    .action(async (o) => {
      const filter = { ...(o.type ? { type: o.type } : {}), ...(o.source ? { source: o.source } : {}) };
      // Without a filter the API retries the whole DLQ only when told so.
      const body = Object.keys(filter).length ? filter : { all: true };
      const r = await api().call<{ count: number }>("POST", "/events/dlq/retry", body);
      out(json(), r, () => `${r.count} event(s) queued for retry`);
    });
  dlq
    .command("discard <id>")
    .description("discard a dead-lettered event (its history stays)")
    .requiredOption("--reason <text>", "why it is discarded (kept in history)")
    .action(async (id: string, o) => {
      const r = await api().call<Row>("DELETE", `/events/dlq/${encodeURIComponent(id)}`, { reason: o.reason });
      out(json(), r, () => `${id}: discarded`);
    });

  // ---- ordered scopes ----------------------------------------------------------------
  const scopes = program.command("scopes").description("ordered scopes parked behind a failing head");
  scopes
    .command("parked")
    .description("list parked scopes: the head, its error, how many wait behind it")
    .option("--limit <n>", "how many", positiveInt, 100)
    .action(async (o) => {
      const r = await api().call<{ count: number; scopes: Row[] }>("GET", `/scopes/parked${query({ limit: o.limit })}`);
      const rows = r.scopes.map((x) => {
        const head = x.head as Row;
        return {
          scope: x.scope,
          head: head.id,
          status: head.status,
          attempts: head.attempts,
          waiting: x.waiting,
          error: x.error,
        };
      });
      out(
        json(),
        r,
        () => `${r.count} parked scope(s)\n${table(rows, ["scope", "head", "status", "attempts", "waiting", "error"])}`,
      );
    });
  scopes
    .command("unpark <scope>")
    .description("retry the head now, or discard it and resume the scope with the next event")
    .option("--retry", "retry the head now (a dead-lettered head gets fresh attempts)")
    .option("--discard", "discard the head (its history stays) and resume with the next event")
    .option("--reason <text>", "why the head is discarded (required with --discard)")
    .action(async (scope: string, o) => {
      if (Boolean(o.retry) === Boolean(o.discard)) throw new InvalidArgumentError("give one of --retry or --discard");
      if (o.discard && !o.reason) throw new InvalidArgumentError("--discard needs --reason");
      const action = o.retry ? "retry" : "discard";
      const r = await api().call<Row>("POST", "/scopes/parked/unpark", {
        scope,
        action,
        ...(o.reason ? { reason: o.reason } : {}),
      });
      out(json(), r, () => `${scope}: head ${String(r.head)} ${action === "retry" ? "retried" : "discarded"}`);
    });

  // ---- replay ------------------------------------------------------------------------
  const replay = program.command("replay").description("replay history through the triggers again");
  replay
    .command("start")
    .description("start a replay job over a time range")
    .addOption(new Option("--last <duration>", "the last 30m, 1h, 2d ...").conflicts("from"))
    .option("--from <time>", "start (ISO 8601)", isoTime)
    .option("--to <time>", "end (ISO 8601; default now)", isoTime)
    .option("--type <type>", "event type (repeatable)", collect)
    .option("--source <source>", "source (repeatable)", collect)
    .option("--status <status>", "only events with this status")
    .option("--target <name>", "one trigger or destination instead of all")
    .option("--rate <n>", "events per second", positiveInt)
    .option("--start-at <time>", "schedule for later (ISO 8601)", isoTime)
    .option("--dry-run", "only count what would be replayed")
    .action(async (o) => {
      let from: string | undefined = o.from;
      if (o.last) {
        const ms = parseDuration(o.last);
        if (ms === null) throw new InvalidArgumentError(`--last: not a duration: ${o.last} (try 30m, 1h, 2d)`);
        from = new Date(Date.now() - ms).toISOString();
      }
      if (!from) throw new InvalidArgumentError("give --last or --from");
      const body = {
        from,
        ...(o.to ? { to: o.to } : {}),
        ...(o.type ? { types: o.type } : {}),
        ...(o.source ? { sources: o.source } : {}),
        ...(o.status ? { status: o.status } : {}),
        ...(o.target ? { target: o.target } : {}),
        ...(o.rate ? { rate: o.rate } : {}),
        ...(o.startAt ? { start_at: o.startAt } : {}),
        ...(o.dryRun ? { dry_run: true } : {}),
      };
      const r = await api().call<{ id: string }>("POST", "/replays", body);
      out(
        json(),
        r,
        () =>
          `replay ${r.id} ${o.startAt ? `scheduled for ${o.startAt}` : "started"}\n  follow it: npx reflex replay status ${r.id}`,
      );
    });
  replay
    .command("status <id>")
    .description("a replay's progress; live until it ends (--no-watch: once)")
    .option("--no-watch", "print once and exit")
    .option("--interval <ms>", "poll interval", positiveInt, 1000)
    .action(async (id: string, o) => {
      const path = `/replays/${encodeURIComponent(id)}`;
      let r = await api().call<Row>("GET", path);
      const ended = (s: unknown) => s === "done" || s === "cancelled" || s === "failed";
      if (o.watch && !ended(r.status) && !json()) {
        const bar = new cliProgress.SingleBar(
          {
            format:
              " {bar} {percentage}% | {value}/{total} scanned | {republished} republished | ETA {eta_s}s | {status}",
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Number(r.total_estimate ?? 0) || 1, Number(r.scanned ?? 0), {
          republished: r.republished ?? 0,
          eta_s: r.eta_s ?? "?",
          status: r.status,
        });
        while (!ended(r.status)) {
          await sleep(o.interval);
          r = await api().call<Row>("GET", path);
          bar.setTotal(Math.max(Number(r.total_estimate ?? 0), Number(r.scanned ?? 0), 1));
          bar.update(Number(r.scanned ?? 0), {
            republished: r.republished ?? 0,
            eta_s: r.eta_s ?? "?",
            status: r.status,
          });
        }
        bar.stop();
      } else if (o.watch && json()) {
        while (!ended(r.status)) {
          await sleep(o.interval);
          r = await api().call<Row>("GET", path);
        }
      }
      out(
        json(),
        r,
        () =>
          `replay ${r.id}: ${r.status}\n  scanned ${r.scanned ?? 0} of ~${r.total_estimate ?? "?"}, republished ${r.republished ?? 0}` +
          (Array.isArray(r.errors) && r.errors.length
            ? `\n  errors: ${(r.errors as unknown[]).map((e) => (e && typeof e === "object" ? String((e as { error?: unknown }).error) : String(e))).join("; ")}`
            : ""),
      );
      if (r.status === "failed") process.exitCode = 1;
    });
  replay
    .command("cancel <id>")
    .description("stop a replay job")
    .action(async (id: string) => {
      const r = await api().call<Row>("POST", `/replays/${encodeURIComponent(id)}/cancel`);
      out(json(), r, () => `replay ${id}: ${r.status ?? "cancelled"}`);
    });
  replay
    .command("list")
    .description("recent replay jobs")
    .action(async () => {
      const r = await api().call<{ replays: Row[] }>("GET", "/replays");
      out(json(), r, () => table(r.replays, ["id", "status", "scanned", "republished", "created_at"]));
    });

  // ---- events ------------------------------------------------------------------------
  const ev = program.command("events").description("read event history");
  ev.command("get <id>")
    .description("one event with its status, attempts, errors, derived events and durable steps")
    .action(async (id: string) => {
      const r = await api().call<Row>("GET", `/events/${encodeURIComponent(id)}`);
      out(json(), r, () => eventDetail(r));
    });
  ev.command("in-flight")
    .description("events claimed and not settled: who holds each, after how many deliveries, since when")
    .option("--limit <n>", "at most this many", positiveInt)
    .action(async (o: { limit?: number }) => {
      const r = await api().call<{ events: Row[] }>("GET", `/events/in-flight${query({ limit: o.limit })}`);
      out(json(), r, () => table(r.events, ["id", "type", "source", "consumer", "deliveries", "since", "lane"]));
    });
  ev.command("tail")
    .description("follow new events as they are recorded")
    .option("--type <type>", "only this event type")
    .option("--source <source>", "only this source")
    .option("--since <duration>", "start this far back (e.g. 5m)", "0s")
    .option("--interval <ms>", "poll interval", positiveInt, 1000)
    .option("--max <n>", "stop after this many events", positiveInt)
    .action(async (o) => {
      const back = parseDuration(o.since);
      if (back === null) throw new InvalidArgumentError(`--since: not a duration: ${o.since}`);
      // Follows what history recorded, in that order, not event timestamps: an event that
      // arrives late with an old timestamp is still printed.
      const since = new Date(Date.now() - back).toISOString();
      let cursor: string | undefined;
      let seen = 0;
      for (;;) {
        const r = await api().call<{ events: Row[]; next_cursor: string | null }>(
          "GET",
          `/events${query({ type: o.type, source: o.source, order: "recorded", ...(cursor ? { cursor } : { recorded_from: since }), limit: 100 })}`,
        );
        for (const e of r.events) {
          process.stdout.write(
            json()
              ? `${terminalSafeJson(e)}\n`
              : terminalSafe(`${e.timestamp}  ${e.status}  ${e.type}  ${e.source}  ${e.id}\n`),
          );
          if (o.max && ++seen >= o.max) return;
        }
        if (r.next_cursor) cursor = r.next_cursor;
        if (r.events.length === 0 || !r.next_cursor) await sleep(o.interval);
      }
    });

  // ---- config ------------------------------------------------------------------------
  program
    .command("config")
    .description("the worker's configuration")
    .command("check")
    .description(
      "check the worker's variables without starting it: the environment, or --env-file files (e.g. .dev.vars); exit 1 naming each bad one",
    )
    .option(
      "--env-file <file>",
      "read variables from this KEY=value file instead of the environment (repeatable)",
      collect,
    )
    .action((o: { envFile?: string[] }) => {
      let vars: Record<string, string | undefined> = process.env;
      if (o.envFile?.length) {
        vars = {};
        for (const f of o.envFile) {
          if (!fs.existsSync(f)) throw new InvalidArgumentError(`--env-file: no such file: ${f}`);
          Object.assign(vars, readDevVars(f));
        }
      }
      const problems = configProblems(vars);
      out(json(), { ok: problems.length === 0, problems }, () =>
        problems.length ? `invalid configuration:\n  - ${problems.join("\n  - ")}` : "configuration ok",
      );
      if (problems.length) process.exitCode = 1;
    });

  return program;
}

export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return Number(process.exitCode ?? 0);
  } catch (e) {
    // Before CommanderError, which it extends: thrown from an action, commander has not
    // printed it (option parsers' errors arrive as plain CommanderErrors, already printed).
    if (e instanceof InvalidArgumentError) {
      process.stderr.write(`error: ${terminalSafe(e.message)}\n`);
      return 2;
    }
    if (e instanceof CommanderError) {
      // --help and --version exit 0; usage errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof UnreachableError) {
      process.stderr.write(`error: ${terminalSafe(e.message)}\n`);
      return 3;
    }
    if (e instanceof ApiError) {
      process.stderr.write(`error: ${terminalSafe(e.message)}\n`);
      return e.status === 0 ? 2 : 1;
    }
    throw e;
  }
}
