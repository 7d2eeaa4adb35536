module netclaim.dev/hack/node/pause

go 1.24
