/**
 * Shell-style name patterns, as policy selectors and the guard's CNI names
 * use them: `*` any run, `?` one character, bracket classes (`[0-9]`,
 * `[!a]`); everything else is literal, so `flannel.*` does not match
 * `flannelx1`, and a `[` without its `]` is just a character.
 */

const compiled = new Map<string, RegExp>();

export function globMatches(pattern: string, text: string): boolean {
  let re = compiled.get(pattern);
  if (re === undefined) {
    re = globToRegExp(pattern);
    compiled.set(pattern, re);
  }
  return re.test(text);
}

/** A pattern without `*`, `?` or `[` matches one name only: itself. */
export function isExactName(pattern: string): boolean {
  return !/[*?[]/.test(pattern);
}

function globToRegExp(pattern: string): RegExp {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    const close = c === "[" ? pattern.indexOf("]", i + 2) : -1;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (close !== -1) {
      const body = pattern.slice(i + 1, close);
      const negated = body.startsWith("!");
      out += `[${negated ? "^" : ""}${(negated ? body.slice(1) : body).replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}
