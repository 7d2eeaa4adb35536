// nri-stub is the benchmark baseline: a Go NRI plugin on
// github.com/containerd/nri/pkg/stub with a no-op RunPodSandbox handler,
// the same work netclaim's benchmark plugin does.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type plugin struct{}

func (plugin) RunPodSandbox(context.Context, *api.PodSandbox) error { return nil }

func main() {
	socket := flag.String("socket", "", "NRI socket path")
	flag.Parse()
	s, err := stub.New(plugin{}, stub.WithSocketPath(*socket), stub.WithPluginName("gostub"), stub.WithPluginIdx("10"),
		stub.WithOnClose(func() { os.Exit(0) }))
	if err == nil {
		err = s.Run(context.Background())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nri-stub: %v\n", err)
		os.Exit(1)
	}
}
