package main

// containerd 2.3 embeds NRI v0.12 (v0.12.0 in 2.3.7; v0.12.5 has the failure policy).
const nriVersion = "v0.12.5"
