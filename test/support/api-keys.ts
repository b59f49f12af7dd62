/**
 * The API keys of the ingest tests, in a module without worker imports so that the unit
 * project can use them too: a bare key, a second one, and two keys with grants.
 */
export const API_KEY = "test-key-0123456789abcdef";
export const OTHER_KEY = "second-key-fedcba9876543210";
export const GRANTED = "granted-key-0123456789abcdef";
export const TYPED = "typed-key-0123456789abcdef";

/** API_KEYS in the JSON form: the bare key, GRANTED (sources and types) and TYPED (types only). */
export const GRANTED_API_KEYS = JSON.stringify([
  API_KEY,
  { key: GRANTED, sources: ["gh", "cron:*"], types: ["timer.*", "issue.triaged"] },
  { key: TYPED, types: ["timer.*", "issue.*"] },
]);
