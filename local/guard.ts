/**
 * What keeps the local stand-ins to their one client on a developer's machine: a request
 * must name a loopback host (a page that rebinds its DNS name to 127.0.0.1 still sends
 * its own name), must not come from a browser page (browsers always send `Origin` on
 * cross-origin requests and WebSocket handshakes; the worker's clients never do), and
 * must carry the checkout's token, compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** A fresh random token for a stand-in (hex, URL- and path-safe). */
export function newToken(): string {
  return randomBytes(24).toString("hex");
}

/** Equal strings, in time that does not depend on where they differ (digests of equal length). */
export function sameToken(given: string | undefined, expected: string): boolean {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return given !== undefined && timingSafeEqual(digest(given), digest(expected));
}

/** Why a request is refused before its token is even looked at, or null. */
export function foreignRequest(req: IncomingMessage): string | null {
  if (req.headers.origin !== undefined) return "requests from web pages (with an Origin header) are refused";
  const host = req.headers.host ?? "";
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0];
  if (!LOOPBACK_HOSTS.has(name.toLowerCase())) return `Host ${JSON.stringify(host)} is not a loopback address`;
  return null;
}
