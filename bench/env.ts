/**
 * The benchmarks' settings from the environment: a number, or the
 * fallback when the variable is unset, refused with the variable's name
 * when it is not what the setting takes.
 */
export function envNumber(name: string, fallback: number, rule: { integer: boolean; min: number }): number {
  const text = process.env[name];
  const value = text === undefined ? fallback : Number(text);
  if (!Number.isFinite(value) || value < rule.min || (rule.integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be ${rule.integer ? "an integer" : "a number"} of at least ${String(rule.min)}, got ${text ?? ""}`);
  }
  return value;
}

/** A positive integer setting, the common case. */
export function envCount(name: string, fallback: number): number {
  return envNumber(name, fallback, { integer: true, min: 1 });
}
