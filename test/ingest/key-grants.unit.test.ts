/** API_KEYS parsing: the CSV and JSON forms and the problems a bad entry gets (no services). */
import { describe, expect, it } from "vitest";
import { parseApiKeys } from "../../src/config/api-keys";
import { API_KEY, GRANTED_API_KEYS as API_KEYS, GRANTED, TYPED } from "../support/api-keys";

describe("API_KEYS: the CSV and JSON forms", () => {
  it("bare keys in CSV; keys and grants in JSON; problems name the entry and field, never a key", () => {
    expect(parseApiKeys(" key-a-0123456789abcdef, key-b-0123456789abcdef ,,")).toEqual({
      list: [{ key: "key-a-0123456789abcdef" }, { key: "key-b-0123456789abcdef" }],
      problems: [],
    });
    expect(parseApiKeys(API_KEYS).list).toEqual([
      { key: API_KEY },
      { key: GRANTED, sources: ["gh", "cron:*"], types: ["timer.*", "issue.triaged"] },
      { key: TYPED, types: ["timer.*", "issue.*"] },
    ]);
    const bad = parseApiKeys(
      JSON.stringify([
        "short-secret",
        { key: GRANTED, sources: [] },
        { key: TYPED, topics: ["x"] },
        API_KEY,
        { key: API_KEY },
        { key: API_KEY, types: ["a"] },
      ]),
    ).problems;
    expect(bad).toEqual([
      "API_KEYS[0]: each key must be at least 16 characters",
      "API_KEYS[1].sources: must list at least one source (omit it for any)",
      expect.stringMatching(/^API_KEYS\[2\]: .*topics/),
      "API_KEYS[5]: the same key as an earlier entry, with other grants",
    ]);
    expect(bad.join()).not.toContain("short-secret");
    expect(parseApiKeys("[not json").problems).toEqual([expect.stringMatching(/^API_KEYS: not valid JSON/)]);
  });
});
