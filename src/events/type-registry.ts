/**
 * The event type registry: type name -> zod schema of the type's own fields (everything
 * but id/type/source/timestamp/meta). Ingest validates against it; an unknown type is an
 * error that names the registered types.
 *
 * Built-in and project types are declared in ./event-types.ts (the one place to add a type).
 * `registry.register()` also works at run time, e.g. from a plugin module imported by
 * src/index.ts.
 */
import { z } from "zod";

/** A type's field schema: an object schema (use z.strictObject to reject unknown fields). */
export type FieldSchema = z.ZodType<Record<string, unknown>>;

const TYPE_NAME = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;

export class UnknownEventTypeError extends Error {
  constructor(
    readonly type: string,
    readonly registered: string[],
  ) {
    super(`unknown event type "${type}"; registered types: ${registered.join(", ")}`);
    this.name = "UnknownEventTypeError";
  }
}

export class EventRegistry {
  private readonly schemas = new Map<string, FieldSchema>();

  /** Adds a type. Names are lower-case dotted (`order.created`); registering twice is an error. */
  register(type: string, fields: FieldSchema): this {
    if (!TYPE_NAME.test(type)) throw new Error(`invalid event type name "${type}" (expected e.g. "order.created")`);
    if (this.schemas.has(type)) throw new Error(`event type "${type}" is already registered`);
    this.schemas.set(type, fields);
    return this;
  }

  has(type: string): boolean {
    return this.schemas.has(type);
  }

  /** The field schema of `type`; throws UnknownEventTypeError naming the registered types. */
  get(type: string): FieldSchema {
    const s = this.schemas.get(type);
    if (!s) throw new UnknownEventTypeError(type, this.types());
    return s;
  }

  /** Registered type names, sorted. */
  types(): string[] {
    return [...this.schemas.keys()].sort();
  }

  /** JSON Schema (2020-12) of each type's fields, for the OpenAPI document. */
  jsonSchemas(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, schema] of this.schemas) {
      try {
        out[name] = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
      } catch {
        out[name] = { type: "object" }; // a user schema zod cannot express in JSON Schema
      }
    }
    return out;
  }
}
