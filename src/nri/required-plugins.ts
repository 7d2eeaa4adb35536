/**
 * The pod annotation NRI's default validator (NRI v0.10+) reads to refuse a
 * container while a plugin it names is not registered. Read the way the
 * validator reads it, so the agent can tell whether a pod is protected.
 */
import { parse as parseYaml } from "yaml";

export const REQUIRED_PLUGINS_ANNOTATION = "required-plugins.noderesource.dev";

export type RequiredPlugins =
  | { readonly kind: "listed"; readonly plugins: readonly string[]; readonly key: string }
  | { readonly kind: "absent" }
  | { readonly kind: "invalid"; readonly key: string; readonly reason: string };

/**
 * The plugins required for `container` of a pod with `annotations` (for the
 * pod as a whole without one). Like the validator, only the first present of
 * `<key>/container.<name>`, `<key>/pod` and `<key>` counts, and its value is a
 * YAML list of names (JSON included).
 */
export function requiredPlugins(annotations: Readonly<Record<string, string>>, container?: string): RequiredPlugins {
  const keys = [...(container === undefined ? [] : [`${REQUIRED_PLUGINS_ANNOTATION}/container.${container}`]), `${REQUIRED_PLUGINS_ANNOTATION}/pod`, REQUIRED_PLUGINS_ANNOTATION];
  const key = keys.find((k) => Object.hasOwn(annotations, k));
  if (key === undefined) return { kind: "absent" };
  let value: unknown;
  try {
    value = parseYaml(annotations[key] ?? "");
  } catch (err) {
    return { kind: "invalid", key, reason: err instanceof Error ? err.message : String(err) };
  }
  if (value === null) return { kind: "listed", plugins: [], key };
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === "string")) {
    return { kind: "invalid", key, reason: "not a list of plugin names" };
  }
  return { kind: "listed", plugins: value, key };
}
