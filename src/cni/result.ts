/**
 * CNI results and errors (spec versions 0.3.0 to 1.1.0), validated before we
 * trust a single address from them.
 */
import { z } from "zod";
import { formatCidr, formatIp, parseCidr, parseIp } from "../common/ip.ts";
import { firstIssue } from "../common/zod-issue.ts";

const cidr = z.string().transform((text, ctx) => {
  const prefix = parseCidr(text);
  if (prefix === undefined) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not an address with a prefix length` });
    return z.NEVER;
  }
  return formatCidr(prefix);
});

const ip = z.string().transform((text, ctx) => {
  const address = parseIp(text);
  if (address === undefined) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not an IP address` });
    return z.NEVER;
  }
  return formatIp(address);
});

const resultSchema = z.object({
  cniVersion: z.string(),
  ips: z.array(z.object({ address: cidr, gateway: ip.optional() })).default([]),
  routes: z.array(z.object({ dst: cidr, gw: ip.optional() })).default([]),
  dns: z
    .object({
      nameservers: z.array(z.string()).optional(),
      domain: z.string().optional(),
      search: z.array(z.string()).optional(),
      options: z.array(z.string()).optional(),
    })
    .optional(),
});

export type CniResult = z.infer<typeof resultSchema>;

export function parseCniResult(output: unknown): { ok: true; result: CniResult } | { ok: false; message: string } {
  const parsed = resultSchema.safeParse(output);
  if (parsed.success) return { ok: true, result: parsed.data };
  return { ok: false, message: firstIssue(parsed.error) };
}

const errorSchema = z.object({ code: z.number().int(), msg: z.string(), details: z.string().optional() });

export type CniErrorObject = z.infer<typeof errorSchema>;

export function parseCniError(output: unknown): CniErrorObject | undefined {
  const parsed = errorSchema.safeParse(output);
  return parsed.success ? parsed.data : undefined;
}
