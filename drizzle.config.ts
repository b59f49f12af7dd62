import { defineConfig } from "drizzle-kit";

// `npm run db:generate` writes SQL migrations from src/db/schema.ts into drizzle/.
// Migrations are applied by `npm run db:migrate` (local/migrate.ts), which uses the
// same Neon driver as the worker.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema.ts",
  out: "./drizzle",
});
