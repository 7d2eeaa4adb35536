import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NetDevice } from "./device.ts";
import { devicePolicySchema, evaluatePolicy } from "./policy.ts";
import { resolveShare, shareSchema, type ShareRule } from "./share.ts";

const nic = (speedMbps?: number): NetDevice => ({
  ifName: "ens2f0",
  ifIndex: 30,
  linkType: "ether",
  virtual: false,
  lowers: [],
  devPort: 0,
  ...(speedMbps !== undefined && { speedMbps }),
});

const share = (input: unknown): ShareRule => shareSchema.parse(input);

/** Each issue of a policy with one include rule as `path: message`, as the AgentConfig error prints it. */
function issues(rule: unknown): string[] {
  const parsed = devicePolicySchema.safeParse({ include: [{ ifName: "ens*", ...(rule as object) }] });
  return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("share: the policy block", () => {
  it("requires interfaces, a whole number from 1 to 4096", () => {
    assert.deepEqual(issues({ share: {} }), ["include.0.share.interfaces: must be a whole number from 1 to 4096: how many pod interfaces the parent may carry at once"]);
    assert.deepEqual(issues({ share: { interfaces: 0 } }), ["include.0.share.interfaces: must be at least 1: how many pod interfaces the parent may carry at once"]);
    assert.deepEqual(issues({ share: { interfaces: 4097 } }), ["include.0.share.interfaces: must be at most 4096"]);
    assert.match(issues({ share: { interfaces: 1.5 } })[0] ?? "", /^include\.0\.share\.interfaces: must be a whole number/);
    assert.deepEqual(issues({ share: { interfaces: 4096 } }), []);
  });

  it("takes bandwidth figures as positive whole bits per second, and says how to write them", () => {
    const message = 'must be a positive whole number of bits per second as a Kubernetes quantity, such as "10G", "25G" or "500M" (k, M, G, T are powers of 1000)';
    for (const bandwidth of ["10 G", "10Gbps", "0", "-1G", "1500m"]) {
      assert.deepEqual(issues({ share: { interfaces: 8, bandwidth } }), [`include.0.share.bandwidth: ${message}`], bandwidth);
    }
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidth: 10 } }), ['include.0.share.bandwidth: must be a quantity of bits per second in quotes, such as "10G" or "500M"']);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidthPolicy: { step: "1.5" } } }), [`include.0.share.bandwidthPolicy.step: ${message}`]);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidth: "25Gi", bandwidthPolicy: { min: "100M", max: "10G", step: "100M", default: "1G" } } }), []);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidthPolicy: { size: "1G" } } }).length, 1, "unknown fields are refused");
  });

  it("refuses a request policy the API server would refuse, naming the field and the fix", () => {
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidth: "1G", bandwidthPolicy: { min: "2G" } } }), [
      "include.0.share.bandwidthPolicy.min: 2G is more than the bandwidth 1G (share.bandwidth): lower it, or set share.bandwidth to what the parent carries",
    ]);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidth: "1G", bandwidthPolicy: { min: "600M", step: "500M" } } }), [
      "include.0.share.bandwidthPolicy.step: min 600M plus one step 500M is more than the bandwidth 1G (share.bandwidth): lower the step, so that an allocation can be more than min",
    ]);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidth: "10G", bandwidthPolicy: { max: "20G", default: "11G" } } }), [
      "include.0.share.bandwidthPolicy.max: 20G is more than the bandwidth 10G (share.bandwidth): lower it, or leave it out (the bandwidth is the limit)",
      "include.0.share.bandwidthPolicy.default: 11G is more than the bandwidth 10G (share.bandwidth): lower it, or leave it out (an equal share, bandwidth / interfaces)",
    ]);
  });

  it("checks the policy's own consistency without a bandwidth, since the link speed comes later", () => {
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidthPolicy: { min: "100M", step: "100M", default: "150M" } } }), [
      "include.0.share.bandwidthPolicy.default: 150M must be min 100M plus a whole number of steps of 100M",
    ]);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidthPolicy: { min: "1G", max: "500M" } } }), ["include.0.share.bandwidthPolicy.max: 500M is less than min 1G"]);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidthPolicy: { step: "100M", default: "50M" } } }), [
      "include.0.share.bandwidthPolicy.default: 50M is less than min 100M (step)",
    ]);
    assert.deepEqual(issues({ share: { interfaces: 8, bandwidthPolicy: { max: "2G", default: "3G" } } }), ["include.0.share.bandwidthPolicy.default: 3G is more than max 2G"]);
  });

  it("rides on the verdict of the rule that publishes the device", () => {
    const policy = devicePolicySchema.parse({ include: [{ ifName: "eno*" }, { ifName: "ens*", share: { interfaces: 8 } }] });
    const subject = { ifName: "ens2f0", deviceName: "pci-0000-5e-00-0", attributes: { local: {}, standard: {} }, guardedKinds: [] };
    const verdict = evaluatePolicy(policy, subject);
    assert.deepEqual(verdict.publish && verdict.share, { interfaces: 8 });
    const whole = evaluatePolicy(policy, { ...subject, ifName: "eno1" });
    assert.equal(whole.publish && "share" in whole, false, "a whole-device rule carries no share");
  });
});

describe("share: resolved per device", () => {
  it("takes the link speed as bandwidth and charges an equal share by default, one interface per allocation", () => {
    const resolved = resolveShare(share({ interfaces: 8 }), nic(10_000));
    assert.deepEqual(resolved, {
      parent: {
        interfaces: 8,
        bandwidth: "10G",
        bandwidthFrom: "link speed",
        requestPolicy: {
          interfaces: { default: "1", validValues: ["1"] },
          bandwidth: { default: "1250M", validRange: { min: "1M", step: "1M" } },
        },
      },
      note: "published as a shared parent: 8 interfaces, bandwidth 10G bit/s (link speed)",
    });
  });

  it("prefers the policy's bandwidth and figures, and rounds the equal share down onto a step within max", () => {
    const resolved = resolveShare(share({ interfaces: 3, bandwidth: "25G", bandwidthPolicy: { min: "500M", step: "1G" } }), nic(10_000));
    assert.equal(resolved.parent?.bandwidth, "25G");
    assert.equal(resolved.parent.bandwidthFrom, "share.bandwidth");
    // 25G / 3 = 8.33G; on the steps 500M + n x 1G: 7.5G.
    assert.deepEqual(resolved.parent.requestPolicy.bandwidth, { default: "7500M", validRange: { min: "500M", step: "1G" } });
    const capped = resolveShare(share({ interfaces: 2, bandwidthPolicy: { max: "2G", step: "500M" } }), nic(10_000));
    assert.deepEqual(capped.parent?.requestPolicy.bandwidth, { default: "2G", validRange: { min: "500M", max: "2G", step: "500M" } });
    const atLeastMin = resolveShare(share({ interfaces: 4096, bandwidthPolicy: { min: "100M" } }), nic(1_000));
    assert.equal(atLeastMin.parent?.requestPolicy.bandwidth?.default, "100M", "1G / 4096 is below min: min");
    const given = resolveShare(share({ interfaces: 8, bandwidthPolicy: { default: "1G" } }), nic(10_000));
    assert.equal(given.parent?.requestPolicy.bandwidth?.default, "1G");
  });

  it("publishes no bandwidth when neither the policy nor the link gives one, and says so", () => {
    const resolved = resolveShare(share({ interfaces: 4, bandwidthPolicy: { default: "1G" } }), nic());
    assert.deepEqual(resolved, {
      parent: { interfaces: 4, requestPolicy: { interfaces: { default: "1", validValues: ["1"] } } },
      note: "published as a shared parent: 4 interfaces, no bandwidth capacity (the link reports no speed and share.bandwidth is not set; share.bandwidthPolicy unused)",
    });
  });

  it("does not publish a device whose link speed the policy's figures do not fit, and says which figure", () => {
    const resolved = resolveShare(share({ interfaces: 8, bandwidthPolicy: { default: "1G" } }), nic(100));
    assert.deepEqual(resolved, {
      problem:
        "not published: shared parent figures the API server would refuse: share.bandwidthPolicy.default 1G is more than the bandwidth 100M (link speed): lower it, or leave it out (an equal share, bandwidth / interfaces)",
    });
    const tiny = resolveShare(share({ interfaces: 8 }), nic(1));
    assert.match(tiny.parent === undefined ? tiny.problem : "", /share\.bandwidthPolicy\.step min 1M \(the default\) plus one step 1M \(the default\) is more than the bandwidth 1M \(link speed\)/);
  });
});
