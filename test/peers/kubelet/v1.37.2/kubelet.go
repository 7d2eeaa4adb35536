// What the kubelet-peer (../main.go) needs from the Kubernetes 1.37 kubelet's
// API: handlers, the node getter and the plugin manager take a context; the
// health stream is the v1 one (the kubelet wraps a v1alpha1 server in it).
package main

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	drahealthv1 "k8s.io/kubelet/pkg/apis/dra-health/v1"
	draplugin "k8s.io/kubernetes/pkg/kubelet/cm/dra/plugin"
	"k8s.io/kubernetes/pkg/kubelet/config"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
)

type healthStream = drahealthv1.DRAResourceHealth_NodeWatchResourcesClient

func (h reportingHandler) RegisterPlugin(ctx context.Context, name, endpoint string, versions []string, timeout *time.Duration) error {
	return registered(name, endpoint, versions, h.DRAPluginManager.RegisterPlugin(ctx, name, endpoint, versions, timeout))
}

func (h reportingHandler) DeRegisterPlugin(ctx context.Context, name, endpoint string) {
	h.DRAPluginManager.DeRegisterPlugin(ctx, name, endpoint)
	deregistered(name, endpoint)
}

func (healthReporter) HandleWatchResourcesStream(_ context.Context, stream healthStream, driver string) error {
	return reportHealth(stream, driver)
}

func newDRAPluginManager(ctx context.Context, client kubernetes.Interface, getNode func(context.Context) (*v1.Node, error), wipingDelay time.Duration) *draplugin.DRAPluginManager {
	return draplugin.NewDRAPluginManager(ctx, client, getNode, healthReporter{}, wipingDelay)
}

func runPluginManager(ctx context.Context, manager pluginmanager.PluginManager, stop <-chan struct{}) {
	manager.Run(ctx, config.NewSourcesReady(func(sets.Set[string]) bool { return true }), stop)
}

// healthFeatureGates turns the health stream on or off (-health): from 1.36
// ResourceHealthStatusMessage is on by default and refuses to be on without
// ResourceHealthStatus, so both go together.
func healthFeatureGates(on bool) map[string]bool {
	return map[string]bool{"ResourceHealthStatus": on, "ResourceHealthStatusMessage": on}
}
