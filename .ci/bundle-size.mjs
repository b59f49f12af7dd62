// Fails when the deployable bundle exceeds Workers' compressed size limit.
// Free plan: 3 MiB gzip; paid: 10 MiB. We hold ourselves to the free limit.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const dir = process.argv[2];
const LIMIT = 3 * 1024 * 1024;
let raw = 0;
let gz = 0;
for (const f of fs.readdirSync(dir, { recursive: true })) {
  const p = path.join(dir, String(f));
  if (!fs.statSync(p).isFile() || p.endsWith(".map")) continue;
  const b = fs.readFileSync(p);
  raw += b.length;
  gz += zlib.gzipSync(b, { level: 9 }).length;
}
if (raw === 0) {
  console.error(`no bundle in ${dir}: did the build fail?`);
  process.exit(1);
}
const mib = (n) => (n / 1024 / 1024).toFixed(2);
console.log(`bundle: ${mib(raw)} MiB raw, ${mib(gz)} MiB gzip (limit ${mib(LIMIT)} MiB gzip)`);
if (gz > LIMIT) {
  console.error("bundle exceeds the Workers size limit");
  process.exit(1);
}
