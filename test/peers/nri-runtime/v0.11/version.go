package main

// CRI-O 1.35 and 1.36 and containerd 2.2 embed NRI v0.11.
const nriVersion = "v0.11.0"
