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

// Two projects:
//  - workers: the worker's code runs inside workerd (the Workers runtime) and reaches the
//    real local Redis and Postgres through the stand-ins that test/global-setup.ts starts;
//  - node: the Node-side tooling in local/ and the CLI, against the same services.
// The global setup is the root's, so it runs once for both and both can inject() from it.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ["./test/global-setup.ts"],
    projects: [
      {
        plugins: [cloudflareTest({ main: "./src/index.ts", miniflare: workerOptions })],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts"],
          exclude: ["test/node/**"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "node",
          environment: "node",
          include: ["test/node/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
