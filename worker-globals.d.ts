// The worker's main module, for `exports` from "cloudflare:workers" in the tests.
// worker-configuration.d.ts holds only the runtime types (`npm run cf-typegen`, checked by
// .ci/run): the Env part wrangler would add follows each developer's .dev.vars, which made
// `wrangler dev` call the file out of date; the project's own Env is in src/config.
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import("./src/index");
  }
}
