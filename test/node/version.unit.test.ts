/** The package version lives in package.json only: the worker's code imports it from there. */
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { version } from "../../package.json";
import { traceConfig } from "../../src/obs/trace";

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : /\.(ts|mjs|js)$/.test(e.name) ? [p] : [];
  });
}

describe("package version", () => {
  it("no source file writes the version out; the ones that report it import package.json", () => {
    const literal = new RegExp(`["'\`]${version.replace(/\./g, "\\.")}["'\`]`);
    const offenders = [...sources("src"), ...sources("cli"), ...sources("bin")].filter((f) =>
      literal.test(fs.readFileSync(f, "utf8")),
    );
    expect(offenders).toEqual([]);
    for (const f of ["src/obs/trace.ts", "src/http/docs.ts", "src/destinations/deliver.ts"])
      expect(fs.readFileSync(f, "utf8"), f).toMatch(/import \{ version \} from "\.\.\/\.\.\/package\.json";/);
  });

  it("traces report it as the service version", () => {
    const cfg = { OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel.example/v1/traces", OTEL_SERVICE_NAME: "reflex-edge" };
    expect(traceConfig(cfg as Parameters<typeof traceConfig>[0]).service.version).toBe(version);
  });
});
