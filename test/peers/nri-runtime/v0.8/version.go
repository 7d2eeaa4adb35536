package main

// containerd 2.0 and 2.1 embed NRI v0.8.
const nriVersion = "v0.8.0"
