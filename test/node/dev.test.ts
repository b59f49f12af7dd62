/**
 * `npm run dev` on a machine with neither Redis nor PostgreSQL (the probed addresses point
 * at closed ports), in a copy of the checkout: it runs on an embedded PostgreSQL alone, a
 * webhook to the demo source ends `completed`, the event is still there after a restart,
 * and SIGTERM to npm (what a process manager or an IDE sends) leaves no child behind and
 * frees the ports.
 */
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../local/sockets";
import { alive, descendants, listening, projectCopy } from "../support/project";

const copy = projectCopy();
const ADMIN = "dev-test-admin-token-0123456789";
let running: ChildProcess | undefined;

afterAll(async () => {
  if (running?.exitCode === null) running.kill("SIGKILL");
  copy.remove();
});

async function startDev(env: Record<string, string>): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn("npm", ["run", "dev"], { cwd: copy.dir, env: { ...process.env, ...env }, stdio: "pipe" });
  running = child;
  let output = "";
  child.stdout!.on("data", (d) => {
    output += d;
  });
  child.stderr!.on("data", (d) => {
    output += d;
  });
  const until = Date.now() + 150_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm run dev exited (${child.exitCode}):\n${output}`);
    const status = await fetch(`http://127.0.0.1:${env.PORT}/ready`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return { child, output: () => output };
    if (Date.now() > until) throw new Error(`not ready:\n${output}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function stopDev(child: ChildProcess, ports: number[]): Promise<void> {
  const tree = descendants(child.pid!);
  expect(tree.length).toBeGreaterThan(3); // node, wrangler, workerd, postgres at least
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  await exited;
  expect(alive(tree)).toEqual([]);
  for (const port of ports) expect(await listening(port), `port ${port}`).toBe(false);
}

describe("npm run dev from a bare machine", () => {
  it("runs on an embedded PostgreSQL, keeps its data across a restart, and stops every child on SIGTERM", async () => {
    const [port, proxyPort, closedRedis, closedPg] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const example = fs.readFileSync(path.join(copy.dir, ".dev.vars.example"), "utf8");
    fs.writeFileSync(
      path.join(copy.dir, ".dev.vars"),
      example
        .replaceAll("<random>", "devtesttoken0123456789")
        .replace("127.0.0.1:8078", `127.0.0.1:${proxyPort}`)
        .replace(/^ADMIN_TOKEN=.*$/m, `ADMIN_TOKEN=${ADMIN}`),
    );
    const env = {
      PORT: String(port),
      REFLEX_LOCAL_REDIS: `127.0.0.1:${closedRedis}`,
      REFLEX_LOCAL_POSTGRES: `postgresql://postgres@127.0.0.1:${closedPg}`,
    };
    const base = `http://127.0.0.1:${port}`;
    const event = (id: string) =>
      fetch(`${base}/events/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } }).then(
        (r) => r.json() as Promise<{ status?: string }>,
      );

    const first = await startDev(env);
    expect(first.output()).toMatch(/mode: EVENT_BACKEND=postgres on embedded PostgreSQL .*data in \.reflex[/\\]pg/);
    expect(first.output()).toContain("npm run dev -- --backend redis");
    const posted = await fetch(`${base}/webhooks/demo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hello: "bare machine" }),
    });
    expect(posted.status).toBe(202);
    const { id } = (await posted.json()) as { id: string };
    let status: string | undefined;
    for (let i = 0; i < 100 && status !== "completed"; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await event(id)).status;
    }
    expect(status).toBe("completed");
    await stopDev(first.child, [port, proxyPort]);
    expect(fs.existsSync(path.join(copy.dir, ".reflex", "pg", "data", "PG_VERSION"))).toBe(true);

    const second = await startDev(env);
    expect((await event(id)).status).toBe("completed");
    await stopDev(second.child, [port, proxyPort]);
  }, 400_000);

  it("asked for Redis when none answers, says how to start one and starts nothing", async () => {
    const closed = await freePort();
    const r = spawn("npm", ["run", "dev", "--", "--backend", "redis"], {
      cwd: copy.dir,
      env: { ...process.env, PORT: String(await freePort()), REFLEX_LOCAL_REDIS: `127.0.0.1:${closed}` },
      stdio: "pipe",
    });
    let err = "";
    r.stderr!.on("data", (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((res) => r.once("exit", res));
    expect(code).toBe(1);
    expect(err).toContain(`Redis is not answering on 127.0.0.1:${closed}`);
    expect(err).toMatch(new RegExp(`redis-server --daemonize yes --bind 127\\.0\\.0\\.1 --port ${closed}`));
  });
});
