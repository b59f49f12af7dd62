/**
 * Fails when a comment or a document cites a repository path that does not exist, so that a
 * newcomer following one never lands on nothing. Checked:
 *  - comments (`//`, `/* *\/`, Lua's `--`) in src/, test/, bench/, local/, cli/, scripts/:
 *    tokens such as src/db/schema.ts, test/support/, .ci/run or `./<name>.ts` (relative to
 *    the file); a module path without extension (src/http/router) resolves as an import would;
 *  - README.md, CONTRIBUTING.md, SECURITY.md and docs/**\/*.md: paths in code spans and code
 *    blocks, and relative links `[text](<path>#<anchor>)`, whose anchor must be a heading of
 *    the target as GitHub names it.
 * A path may hold `*` (within a name) or `...` (anything) or `{a,b}`; `<name>` ends it.
 *
 *   tsx scripts/check-cited-paths.ts      (run by npm run lint)
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export interface Citation {
  /** The citing file, relative to the root. */
  file: string;
  line: number;
  /** The path as cited. */
  cited: string;
  problem: string;
}

/** Top-level folders whose paths are recognised as citations without a `./`. */
export const ROOTS = ["src", "test", "bench", "local", "cli", "scripts", "docs", "drizzle", "bin", ".ci"];
const CODE_DIRS = ["src", "test", "bench", "local", "cli", "scripts"];
const CODE_EXT = /\.(ts|tsx|mjs|lua)$/;
const DOCS = ["README.md", "CONTRIBUTING.md", "SECURITY.md"];
const MODULE_EXT = [".ts", ".tsx", ".mjs", ".js"];
const SKIP_DIRS = new Set(["node_modules", ".git", "dist", ".wrangler"]);

const roots = ROOTS.map((r) => r.replace(/\./g, "\\.")).join("|");
/** A path token: a known root or ./ ../ then path characters; not part of a URL or package name. */
const PATH_TOKEN = new RegExp(
  `(?<![\\w./@:~$-])((?:\\.\\.?/)+[\\w.{},*-][\\w./{},*-]*|(?:${roots})/[\\w./{},*-]*)`,
  "g",
);

function walk(root: string, dir: string, keep: (rel: string) => boolean, out: string[] = []): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(path.join(root, dir), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) walk(root, rel, keep, out);
    } else if (keep(rel)) out.push(rel);
  }
  return out;
}

/** `a/{b,c}.ts` -> a/b.ts, a/c.ts. */
function expandBraces(p: string): string[] {
  const m = /\{([^{}]*)\}/.exec(p);
  if (!m) return [p];
  return m[1]!.split(",").flatMap((alt) => expandBraces(p.slice(0, m.index) + alt + p.slice(m.index + m[0].length)));
}

/** Whether `rel` (posix, relative to root, `*` and `...` as wildcards) names something that exists. */
function exists(root: string, rel: string): boolean {
  const normal = path.posix.normalize(rel);
  if (normal.startsWith("../")) return false;
  if (!/\*|\.\.\./.test(normal)) {
    // A module path as imports write it: src/http/router is router.ts, src/triggers its index.ts.
    const asModule = /(^|\/)[^./][^/]*$/.test(normal)
      ? ["", ...MODULE_EXT, ...MODULE_EXT.map((e) => `/index${e}`)]
      : [""];
    return asModule.some((ext) => fs.existsSync(path.join(root, normal + ext)));
  }
  const segments = normal.replace(/\/$/, "").split("/");
  let dirs = [""];
  for (const [i, seg] of segments.entries()) {
    const last = i === segments.length - 1;
    if (!/\*|\.\.\./.test(seg)) {
      dirs = dirs.map((d) => path.posix.join(d, seg)).filter((d) => fs.existsSync(path.join(root, d)));
      continue;
    }
    const re = new RegExp(
      `^${seg
        .split(/(\*|\.\.\.)/)
        .map((s, j) => (j % 2 ? (s === "*" ? "[^/]*" : ".*") : s.replace(/[.+?^$()[\]\\|]/g, "\\$&")))
        .join("")}$`,
    );
    dirs = dirs.flatMap((d) => {
      try {
        return fs
          .readdirSync(path.join(root, d), { withFileTypes: true })
          .filter((e) => re.test(e.name) && (last || e.isDirectory()))
          .map((e) => path.posix.join(d, e.name));
      } catch {
        return [];
      }
    });
  }
  return dirs.length > 0;
}

/** Path tokens in `text`, trailing sentence punctuation removed. */
function pathTokens(text: string): { token: string; index: number }[] {
  const out: { token: string; index: number }[] = [];
  for (const m of text.matchAll(PATH_TOKEN)) {
    let token = m[1]!;
    // A sentence's full stop, comma or ellipsis after a path is not part of it.
    token = token.replace(/(?<!\.)\.{1,2}$|\.{4,}$|[,]+$/, "").replace(/\.{3}$/, "");
    if (token.split("{").length !== token.split("}").length) continue;
    if (/^(\.\.?\/)+$/.test(token)) continue;
    out.push({ token, index: m.index! });
  }
  return out;
}

function lineAt(text: string, index: number): number {
  let n = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < index; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

/** Comment ranges of a TypeScript or JavaScript file (the parser's, so strings and regexes are not comments). */
function codeComments(file: string, text: string): { pos: number; text: string }[] {
  if (file.endsWith(".lua")) {
    const out: { pos: number; text: string }[] = [];
    for (const m of text.matchAll(/--\[(=*)\[[\s\S]*?\]\1\]|--[^\n]*/g)) out.push({ pos: m.index!, text: m[0] });
    return out;
  }
  const kind = file.endsWith(".tsx") ? ts.ScriptKind.TSX : file.endsWith(".mjs") ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const seen = new Map<number, string>();
  const add = (ranges: ts.CommentRange[] | undefined) => {
    for (const r of ranges ?? []) seen.set(r.pos, text.slice(r.pos, r.end));
  };
  const visit = (node: ts.Node) => {
    add(ts.getLeadingCommentRanges(text, node.pos));
    add(ts.getTrailingCommentRanges(text, node.end));
    if (node.kind === ts.SyntaxKind.JsxText) return;
    for (const child of node.getChildren(source)) visit(child);
  };
  visit(source);
  return [...seen].map(([pos, t]) => ({ pos, text: t }));
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
export function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The anchors a markdown file offers: its headings (numbered when repeated) and explicit ids. */
export function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  const counts = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const base = slug(h[1]!);
      const n = counts.get(base) ?? 0;
      counts.set(base, n + 1);
      out.add(n ? `${base}-${n}` : base);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  }
  return out;
}

function checkMarkdown(root: string, file: string, text: string, problems: Citation[]) {
  const dir = path.posix.dirname(file);
  const report = (index: number, cited: string, problem: string) =>
    problems.push({ file, line: lineAt(text, index), cited, problem });
  // Code: fenced blocks and inline spans. Paths there are repository paths (from the root).
  const code = /^\s*(```|~~~)[^\n]*\n[\s\S]*?^\s*\1\s*$|`[^`\n]+`/gm;
  for (const m of text.matchAll(code)) {
    for (const { token, index } of pathTokens(m[0])) {
      // ./ and ../ are relative to the document; a dot-folder such as .ci/ is the root's.
      const rel = /^\.\.?\//.test(token) ? path.posix.join(dir, token) : token;
      if (!expandBraces(rel).every((p) => exists(root, p))) report(m.index! + index, token, "does not exist");
    }
  }
  // Relative links and images, outside code.
  const prose = text.replace(code, (s) => " ".repeat(s.length));
  for (const m of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1]!;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith("//")) continue;
    const [p, anchor] = target.split("#") as [string, string | undefined];
    const rel = p ? path.posix.join(dir, decodeURIComponent(p)) : file;
    if (!exists(root, rel)) {
      report(m.index!, target, "does not exist");
      continue;
    }
    if (anchor !== undefined && rel.endsWith(".md")) {
      const offered = anchors(fs.readFileSync(path.join(root, rel), "utf8"));
      if (!offered.has(decodeURIComponent(anchor).toLowerCase()))
        report(m.index!, target, `has no heading for #${anchor}`);
    }
  }
}

/** Every cited path under `root` that does not exist. */
export function checkCitedPaths(root: string): Citation[] {
  const problems: Citation[] = [];
  const code = CODE_DIRS.flatMap((d) => walk(root, d, (rel) => CODE_EXT.test(rel)));
  for (const file of code) {
    const text = fs.readFileSync(path.join(root, file), "utf8");
    const dir = path.posix.dirname(file);
    for (const comment of codeComments(file, text)) {
      for (const { token, index } of pathTokens(comment.text)) {
        const rel = token.startsWith(".") && !token.startsWith(".ci/") ? path.posix.join(dir, token) : token;
        if (!expandBraces(rel).every((p) => exists(root, p)))
          problems.push({ file, line: lineAt(text, comment.pos + index), cited: token, problem: "does not exist" });
      }
    }
  }
  const docs = [
    ...DOCS.filter((f) => fs.existsSync(path.join(root, f))),
    ...walk(root, "docs", (r) => r.endsWith(".md")),
  ];
  for (const file of docs) checkMarkdown(root, file, fs.readFileSync(path.join(root, file), "utf8"), problems);
  return problems;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const problems = checkCitedPaths(root);
  for (const p of problems) console.error(`${p.file}:${p.line}: ${p.cited} ${p.problem}`);
  if (problems.length) {
    console.error(`${problems.length} cited path(s) to fix: point them at what exists, or drop them.`);
    process.exit(1);
  }
}
