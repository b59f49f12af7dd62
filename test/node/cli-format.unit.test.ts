/**
 * What the CLI prints comes from clients' events: terminal control sequences in them are
 * shown as escapes, never sent raw to the terminal; JSON output keeps its meaning.
 */
import { describe, expect, it } from "vitest";
import { terminalSafe, terminalSafeJson } from "../../cli/format";

/** Any character a terminal acts on, by code point (tab and newline are fine). */
const unsafe = (s: string) =>
  [...s].some((c) => {
    const n = c.codePointAt(0)!;
    return (n < 0x20 && n !== 0x09 && n !== 0x0a) || (n >= 0x7f && n <= 0x9f) || (n >= 0x202a && n <= 0x202e);
  });

const hostile = [
  "\u001b]0;pwned\u0007", // OSC: set the window title
  "\u001b[2J\u001b[H", // clear the screen
  "\u009b31m", // C1 CSI: red, as one character
  "ok\rFAKE", // carriage return overwrites the line
  "\u202eevil.exe", // right-to-left override
  "bell\u0007 del\u007f nul\u0000",
];

describe("terminal-safe output", () => {
  it("no control character survives, tabs and newlines do", () => {
    for (const s of hostile) {
      const out = terminalSafe(s);
      expect(unsafe(out), JSON.stringify(s)).toBe(false);
    }
    expect(terminalSafe("a\tb\nc")).toBe("a\tb\nc");
    expect(terminalSafe("\u001b[31mred")).toBe("\\u001b[31mred");
  });

  it("JSON output escapes them too (C1 included, which JSON.stringify leaves raw) and parses back to the same value", () => {
    const value = { source: hostile.join(""), nested: [{ type: "\u009b\u202e" }] };
    expect(unsafe(JSON.stringify(value))).toBe(true); // the gap this closes: C1 stays raw
    const out = terminalSafeJson(value, 2);
    expect(unsafe(out)).toBe(false);
    expect(JSON.parse(out)).toEqual(value);
  });
});
