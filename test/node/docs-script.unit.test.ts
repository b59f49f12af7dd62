/**
 * /docs loads the API reference's script from a CDN pinned by version and Subresource
 * Integrity: the pinned digest must be the digest of that version's file as published on
 * npm (the devDependency installed here), or browsers refuse to run it.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { SCALAR_INTEGRITY, SCALAR_SCRIPT, SCALAR_VERSION } from "../../src/http/docs";

const dir = fileURLToPath(new URL("../../node_modules/@scalar/api-reference/", import.meta.url));

describe("/docs script pin", () => {
  it("version and sha384 are those of the installed @scalar/api-reference", () => {
    const pkg = JSON.parse(readFileSync(`${dir}package.json`, "utf8")) as { version: string };
    expect(pkg.version).toBe(SCALAR_VERSION);
    const file = readFileSync(`${dir}dist/browser/standalone.js`);
    expect(SCALAR_INTEGRITY).toBe(`sha384-${createHash("sha384").update(file).digest("base64")}`);
    expect(SCALAR_SCRIPT).toContain(`@scalar/api-reference@${SCALAR_VERSION}/dist/browser/standalone.js`);
  });
});
