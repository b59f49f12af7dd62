import { describe, expect, it } from "vitest";
import { freshEnv } from "./support/env";
import { API_KEY, authed, call, post, streamEvents, streamLength } from "./fixtures/ingest";

const keys = { API_KEYS: `${API_KEY},another-key-xyz` };

describe("POST /events", () => {
  it("accepts a valid event: 202 with its id, and the event is in the stream as sent", async () => {
    const env = await freshEnv(keys);
    const r = await call(env, authed("/events", { type: "ws.message", source: "ws:client1", connection_id: "client1", content: "hello" }));
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: "accepted" });
    const events = await streamEvents(env);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ id: r.json.id, type: "ws.message", source: "ws:client1", connection_id: "client1", content: "hello" });
    expect(events[0]!.meta.trace_id).toMatch(/^[0-9a-f]{32}$/);
  });

  it("rejects without a key", async () => {
    const env = await freshEnv(keys);
    const r = await call(env, post("/events", { type: "ws.message", source: "x", connection_id: "c", content: "" }));
    expect(r.status).toBe(401);
    expect(r.res.headers.get("content-type")).toBe("application/problem+json");
    expect(await streamLength(env)).toBe(0);
  });
});
