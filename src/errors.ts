/**
 * The error types that cross layers: a bad configuration, and a handler's "not now". Each
 * says what went wrong in its message; the fields carry what a caller needs to act on it.
 */
/** Every problem of the configuration at once, by variable name (never by value). */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/**
 * "Not now": thrown by a handler (or returned by DispatchHooks.admit), it defers the event -
 * pending again at `retryAt`, the attempt given back - unless another handler of the event
 * failed, which makes it an ordinary failed attempt.
 */
export class DeferAttempt extends Error {
  constructor(
    readonly reason: string,
    readonly retryAt: Date,
  ) {
    super(reason);
    this.name = "DeferAttempt";
  }
}
