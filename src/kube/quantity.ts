/**
 * Kubernetes resource quantities (apimachinery's resource.Quantity), the form
 * of every capacity figure in a ResourceSlice. The API server stores a
 * quantity in its canonical form, not as written ("10000M" comes back as
 * "10G", "1.5G" as "1500M"), so netclaim compares quantities by value and
 * never as text: a textual compare would rewrite a slice on every reconcile.
 */

const BINARY_SUFFIXES: Readonly<Record<string, number>> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SUFFIXES: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const GRAMMAR = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;

/** The exact value of a quantity: `coefficient` × 10^`exponent`, the coefficient without trailing zeros. */
export interface QuantityValue {
  readonly coefficient: bigint;
  readonly exponent: number;
}

/** The exact value of `text`, or undefined when it is not a quantity the API server would take. */
export function parseQuantity(text: string): QuantityValue | undefined {
  const match = GRAMMAR.exec(text);
  if (match === null) return undefined;
  const [, sign = "", number = "", exponentSuffix, suffix = ""] = match;
  const [whole = "", fraction = ""] = number.split(".");
  let coefficient = BigInt(`${whole}${fraction}` || "0") * (sign === "-" ? -1n : 1n);
  let exponent = -fraction.length;
  if (exponentSuffix !== undefined) {
    const power = Number(exponentSuffix.slice(1));
    if (!Number.isSafeInteger(power) || Math.abs(power) > 1000) return undefined;
    exponent += power;
  } else if (suffix in BINARY_SUFFIXES) {
    coefficient *= 1n << BigInt(BINARY_SUFFIXES[suffix] ?? 0);
  } else {
    exponent += DECIMAL_SUFFIXES[suffix] ?? 0;
  }
  return normalise(coefficient, exponent);
}

function normalise(coefficient: bigint, exponent: number): QuantityValue {
  if (coefficient === 0n) return { coefficient, exponent: 0 };
  while (coefficient % 10n === 0n) {
    coefficient /= 10n;
    exponent++;
  }
  return { coefficient, exponent };
}

/** The value of `text` when it is a whole number (bits per second, counts), else undefined. */
export function wholeQuantity(text: string): bigint | undefined {
  const value = parseQuantity(text);
  if (value === undefined) return undefined;
  if (value.exponent >= 0) return value.coefficient * 10n ** BigInt(value.exponent);
  return undefined;
}

/**
 * A key equal for two quantities exactly when their values are equal ("10G",
 * "10000M", "1e10"); text that is no quantity is its own key, so it still
 * compares unequal to any real value.
 */
export function quantityKey(text: string): string {
  const value = parseQuantity(text);
  return value === undefined ? `invalid:${text}` : `${value.coefficient}e${value.exponent}`;
}

/**
 * A whole number in the API server's canonical decimal form: the largest of
 * the suffixes k, M, G, T, P, E that divides it exactly (10^10 is "10G",
 * 1.5×10^9 is "1500M"), so what netclaim publishes reads as the server shows it.
 */
export function formatDecimalQuantity(value: bigint): string {
  const suffixes = ["", "k", "M", "G", "T", "P", "E"];
  let index = 0;
  let rest = value;
  while (rest !== 0n && rest % 1000n === 0n && index < suffixes.length - 1) {
    rest /= 1000n;
    index++;
  }
  return `${rest}${suffixes[index] ?? ""}`;
}
