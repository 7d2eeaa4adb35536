package main

// CRI-O 1.34 embeds NRI v0.10.
const nriVersion = "v0.10.0"
