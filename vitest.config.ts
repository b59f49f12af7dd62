import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { unstable_getMiniflareWorkerOptions, unstable_readConfig } from "wrangler";

// The worker as wrangler.toml declares it (compatibility, queues), with the [vars] as its only
// bindings: the pool's own reading of the config (wrangler.configPath) adds a developer's
// .dev.vars or .env to them, and a test would then run with that developer's ADMIN_TOKEN,
// EVENT_MAX_ATTEMPTS or DESTINATIONS. Everything else a test needs comes from
// test/global-setup.ts through freshEnv() (test/support/env.ts).
const wrangler = unstable_readConfig({ config: "./wrangler.toml" });
// wrangler reads .dev.vars (or .env) only when no env file is named: naming one that does not
// exist spares the reading (an option the function takes but does not declare).
const noEnvFiles = { envFiles: ["./.no-env-file-for-tests"] } as Parameters<
  typeof unstable_getMiniflareWorkerOptions
>[2];
const { workerOptions } = unstable_getMiniflareWorkerOptions(wrangler, undefined, noEnvFiles);
workerOptions.bindings = { ...wrangler.vars };

// The packages the worker's code and the workers tests import, pre-bundled by Vite's optimizer:
// workerd fetches every module that is not pre-bundled with one round trip of its own to the
// pool, file by file and again for each test file (an OpenTelemetry SDK alone is hundreds), so
// without it importing costs several seconds per test file. Found by reading src/ and test/, so
// that every subpath of a package is in the same bundle (one hono, one HTTPException class);
// Node's and workerd's own modules stay outside it.
function workerPackages(): string[] {
  const found = new Set<string>();
  const read = (dir: string) => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, d.name);
      if (d.isDirectory()) {
        if (path !== join("test", "node")) read(path);
      } else if (/\.tsx?$/.test(d.name) && path !== join("test", "global-setup.ts")) {
        for (const m of readFileSync(path, "utf8").matchAll(/(?:from |import\()"([^".][^"]*)"/g)) found.add(m[1]!);
      }
    }
  };
  read("src");
  read("test");
  // Node-only test helpers (the global setup's PgBouncer, receiver, fault control) import these.
  const nodeOnly = new Set(["pg", "ws", "playwright-core", "vitest"]);
  return [...found]
    .filter(
      (m) =>
        /^(@[\w.-]+\/)?[\w.-]+(\/[\w./-]+)?$/.test(m) &&
        !/^(node|cloudflare):/.test(m) &&
        !nodeOnly.has(m.split("/")[0]!) &&
        !m.startsWith("vitest"),
    )
    .sort();
}

// Three projects:
//  - unit: pure logic (files named *.unit.test.ts), in Node, with no service at all: no global
//    setup, and test/support/unit-setup.ts fails the run if one was given to it;
//  - workers: the worker's code runs inside workerd (the Workers runtime) and reaches the
//    real local Redis and Postgres through the stand-ins that test/global-setup.ts starts;
//  - node: the Node-side tooling in local/ and the CLI, against the same services.
// workers and node both declare the services' global setup, which provisions once for the
// two of them (see there); `--project unit` starts nothing.
const services = ["./test/global-setup.ts"];
const unitTests = "**/*.unit.test.ts";

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        test: {
          name: "unit",
          environment: "node",
          include: [`test/${unitTests}`],
          setupFiles: ["./test/support/unit-setup.ts"],
        },
      },
      {
        plugins: [cloudflareTest({ main: "./src/index.ts", miniflare: workerOptions })],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts"],
          exclude: ["test/node/**", unitTests],
          globalSetup: services,
          deps: {
            optimizer: {
              ssr: {
                enabled: true,
                include: workerPackages(),
                rolldownOptions: { external: [/^node:/, /^cloudflare:/] },
              },
            },
          },
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["test/node/**/*.test.ts"],
          exclude: [unitTests],
          globalSetup: services,
          testTimeout: 60_000,
        },
      },
    ],
  },
});
