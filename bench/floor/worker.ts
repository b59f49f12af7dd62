/**
 * The floor for bench/ingest.ts: a worker that does nothing but what every accepted
 * single event must do - one request to the Upstash REST API carrying one XADD - and
 * answers 202. No validation, no auth, no wake-up. Its rate under `wrangler dev`, next to
 * the app's own /health in the same run, shows how much of the gap between /events and
 * /health is the round trip itself (a subrequest from workerd to the local gateway).
 */
interface FloorEnv {
  UPSTASH_REDIS_REST_URL: string;
  UPSTASH_REDIS_REST_TOKEN: string;
  STREAM: string;
}

export default {
  async fetch(req: Request, env: FloorEnv): Promise<Response> {
    const body = await req.text();
    const r = await fetch(env.UPSTASH_REDIS_REST_URL, {
      method: "POST",
      headers: { authorization: `Bearer ${env.UPSTASH_REDIS_REST_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(["XADD", env.STREAM, "MAXLEN", "~", "1000000", "*", "e", body]),
    });
    if (!r.ok) return new Response(await r.text(), { status: 503 });
    await r.arrayBuffer();
    return Response.json({ status: "accepted" }, { status: 202 });
  },
};
