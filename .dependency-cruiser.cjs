/**
 * The house plan, checked by `npm run lint`: no import cycle (type-only imports included),
 * and imports run one way, from the entry down to the configuration. A module may import
 * from its own layer or a lower one, never from a higher one. CONTRIBUTING.md draws it.
 */
const layers = [
  ["base", "^src/(errors|clock|failpoints)\\.ts$|^src/config/"],
  ["core", "^src/events/|^src/obs/(log|metrics|usage|trace)\\.ts$|^src/http/problem\\.ts$"],
  ["db", "^src/db/(schema|client|sql)\\.ts$"],
  ["backends", "^src/backends/"],
  ["triggers", "^src/(triggers|destinations|handlers)/"],
  ["consume", "^src/consume/"],
  ["reads", "^src/reads/"],
  ["operations", "^src/operations/"],
  ["surface", "^src/(admin|ingest|health|dashboard|jobs)/|^src/obs/routes\\.ts$|^src/http/(?!problem\\.ts$)"],
  ["app", "^src/app\\.ts$"],
  ["entry", "^src/index\\.ts$"],
];

const upward = layers.slice(0, -1).map(([name, path], i) => ({
  name: `layer-${name}`,
  comment: `${name} may not import a higher layer (${layers
    .slice(i + 1)
    .map(([n]) => n)
    .join(", ")})`,
  severity: "error",
  from: { path },
  to: {
    path: layers
      .slice(i + 1)
      .map(([, p]) => `(${p})`)
      .join("|"),
  },
}));

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "An import cycle, type-only ones included: one of the modules belongs lower.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "in-a-layer",
      comment: "Every module of src/ belongs to a layer of .dependency-cruiser.cjs.",
      severity: "error",
      from: { path: "^src/", pathNot: layers.map(([, p]) => `(${p})`).join("|") },
      to: {},
    },
    {
      name: "src-stands-alone",
      comment: "The worker does not import tests, benches, local tools or the CLI.",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench|local|cli)/" },
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Type-only imports count: a cycle of types is still a cycle a reader has to untangle.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "worker-configuration\\.d\\.ts$" },
  },
};
