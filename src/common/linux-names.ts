/**
 * Names and values netclaim hands to the kernel, checked by one rule
 * wherever they enter: in a claim's NetworkConfig (claims/), in an
 * attachment plan read back from disk (engine/), and right before a netlink
 * request or a /proc/sys write (netlink/).
 */

/**
 * An interface name: Linux IFNAMSIZ is 16 bytes including the NUL, so 1 to
 * 15 characters; "/", ":" and whitespace are never valid (the kernel's
 * dev_valid_name), and we allow only letters, digits, "_", "." and "-".
 * dev_valid_name refuses "." and ".." too, which this pattern lets through:
 * a caller that reports them to a user, or builds a path from the name,
 * refuses them itself.
 */
export const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * A per-interface sysctl value: 1 to 64 plain characters (letters, digits,
 * "_", ".", ":", " " and "-"), enough for numbers, addresses and words, and
 * nothing that could continue a /proc/sys write.
 */
export const SYSCTL_VALUE = /^[A-Za-z0-9_.: -]{1,64}$/;
