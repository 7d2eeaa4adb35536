// What the kubelet-peer (../main.go) needs from the Kubernetes 1.34 kubelet's
// API: handlers and the node getter without a context, the v1alpha1 health
// stream.
package main

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	drahealthv1alpha1 "k8s.io/kubelet/pkg/apis/dra-health/v1alpha1"
	draplugin "k8s.io/kubernetes/pkg/kubelet/cm/dra/plugin"
	"k8s.io/kubernetes/pkg/kubelet/config"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
)

type healthStream = drahealthv1alpha1.DRAResourceHealth_NodeWatchResourcesClient

func (h reportingHandler) RegisterPlugin(name, endpoint string, versions []string, timeout *time.Duration) error {
	return registered(name, endpoint, versions, h.DRAPluginManager.RegisterPlugin(name, endpoint, versions, timeout))
}

func (h reportingHandler) DeRegisterPlugin(name, endpoint string) {
	h.DRAPluginManager.DeRegisterPlugin(name, endpoint)
	deregistered(name, endpoint)
}

func (healthReporter) HandleWatchResourcesStream(_ context.Context, stream healthStream, driver string) error {
	return reportHealth(stream, driver)
}

func newDRAPluginManager(ctx context.Context, client kubernetes.Interface, getNode func(context.Context) (*v1.Node, error), wipingDelay time.Duration) *draplugin.DRAPluginManager {
	var getNodeNow func() (*v1.Node, error)
	if getNode != nil {
		getNodeNow = func() (*v1.Node, error) { return getNode(ctx) }
	}
	return draplugin.NewDRAPluginManager(ctx, client, getNodeNow, healthReporter{}, wipingDelay)
}

func runPluginManager(_ context.Context, manager pluginmanager.PluginManager, stop <-chan struct{}) {
	manager.Run(config.NewSourcesReady(func(sets.Set[string]) bool { return true }), stop)
}

// healthFeatureGates turns the health stream on or off (-health).
func healthFeatureGates(on bool) map[string]bool {
	return map[string]bool{"ResourceHealthStatus": on}
}
