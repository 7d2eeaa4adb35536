// Command kubelet-peer plays the kubelet's part of DRA for netclaim's tests,
// using the kubelet's own code: the plugin manager (the fsnotify watcher of
// plugins_registry plus its reconciler) and the DRA plugin manager (the
// registration handler, version choice, gRPC clients and health stream).
//
// Protocol: one JSON command per line on stdin, one JSON object per line on
// stdout. Commands carry an "id" that their result echoes; commands run
// concurrently. Events (registration, health) have "event" instead of "id".
//
//	{"id":1,"op":"prepare","driver":"d","claims":[{"namespace":"n","uid":"u","name":"c"}]}
//	{"id":2,"op":"unprepare","driver":"d","claims":[...]}
//	{"id":3,"op":"plugin","driver":"d"}   -> the endpoint and service the kubelet would use now
//
// Results: {"id":1,"endpoint":"...","service":"v1.DRAPlugin","response":{...}} or {"id":1,"error":"..."}.
//
// With -kubeconfig and -node-name the DRA plugin manager gets an API client,
// as in the kubelet, and with it the kubelet's ResourceSlice wiping: all of
// the node's slices when it starts, and a driver's slices once none of its
// plugins has been usable for -wiping-delay (the kubelet's is 30 s). Without
// them it has none and never wipes.
//
// One peer per Kubernetes release the tests run against (K8S_VERSION,
// hack/cluster/versions.env): each v1.M.N/ directory is a Go module pinned at
// k8s.io/kubernetes v1.M.N that links this file in (a symlink) together with
// its own kubelet.go, which adapts to what that release's kubelet API changed
// (context arguments, the health API version).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	drapbv1 "k8s.io/kubelet/pkg/apis/dra/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	draplugin "k8s.io/kubernetes/pkg/kubelet/cm/dra/plugin"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager/cache"
)

type output struct{ mu sync.Mutex }

var out output

func (o *output) emit(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		line, _ = json.Marshal(map[string]string{"event": "internal-error", "error": err.Error()})
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

// reportingHandler forwards to the kubelet's DRA plugin manager and reports
// each registration outcome, so tests can wait for it.
type reportingHandler struct{ *draplugin.DRAPluginManager }

var _ cache.PluginHandler = reportingHandler{}

// registered reports the outcome of a registration (kubelet.go's RegisterPlugin).
func registered(name, endpoint string, versions []string, err error) error {
	ev := map[string]any{"event": "registered", "driver": name, "endpoint": endpoint, "versions": versions}
	if err != nil {
		ev["event"], ev["error"] = "registration-failed", err.Error()
	}
	out.emit(ev)
	return err
}

func deregistered(name, endpoint string) {
	out.emit(map[string]any{"event": "deregistered", "driver": name, "endpoint": endpoint})
}

// healthReporter is the kubelet manager's side of the health stream: it
// prints every message the plugin sends (kubelet.go's HandleWatchResourcesStream;
// healthStream is the stream type of that release's kubelet).
type healthReporter struct{}

func reportHealth(stream healthStream, driver string) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			out.emit(map[string]any{"event": "health-stream-ended", "driver": driver, "error": err.Error()})
			return err
		}
		devices := []map[string]any{}
		for _, d := range msg.GetDevices() {
			devices = append(devices, map[string]any{
				"pool": d.GetDevice().GetPoolName(), "device": d.GetDevice().GetDeviceName(),
				"health": d.GetHealth().String(), "lastUpdatedTime": d.GetLastUpdatedTime(),
			})
		}
		out.emit(map[string]any{"event": "health", "driver": driver, "devices": devices})
	}
}

type command struct {
	ID     int              `json:"id"`
	Op     string           `json:"op"`
	Driver string           `json:"driver"`
	Claims []*drapbv1.Claim `json:"claims"`
}

// pluginIdentity reads which endpoint and gRPC service the kubelet chose for
// a plugin. The kubelet keeps both private; reflection reads them without
// copying any of its logic.
func pluginIdentity(p *draplugin.DRAPlugin) (endpoint, service string) {
	v := reflect.ValueOf(p).Elem()
	return v.FieldByName("endpoint").String(), v.FieldByName("chosenService").String()
}

func run(ctx context.Context, pm *draplugin.DRAPluginManager, cmd command) map[string]any {
	result := map[string]any{"id": cmd.ID}
	plugin, err := pm.GetPlugin(cmd.Driver)
	if err != nil {
		result["error"] = err.Error()
		return result
	}
	result["endpoint"], result["service"] = pluginIdentity(plugin)
	var response any
	switch cmd.Op {
	case "plugin":
		return result
	case "prepare":
		response, err = plugin.NodePrepareResources(ctx, &drapbv1.NodePrepareResourcesRequest{Claims: cmd.Claims})
	case "unprepare":
		response, err = plugin.NodeUnprepareResources(ctx, &drapbv1.NodeUnprepareResourcesRequest{Claims: cmd.Claims})
	default:
		err = fmt.Errorf("unknown op %q", cmd.Op)
	}
	if err != nil {
		result["error"] = err.Error()
	} else {
		result["response"] = response
	}
	return result
}

func main() {
	registryDir := flag.String("registry-dir", "", "the plugins_registry directory to watch")
	health := flag.Bool("health", true, "enable the ResourceHealthStatus feature gate (opens the health stream)")
	kubeconfig := flag.String("kubeconfig", "", "API access for the DRA plugin manager's ResourceSlice wiping (none: it never wipes)")
	nodeName := flag.String("node-name", "", "the node whose ResourceSlices the plugin manager wipes (with -kubeconfig)")
	wipingDelay := flag.Duration("wiping-delay", 30*time.Second, "how long a driver may be gone before its slices are wiped (the kubelet's defaultWipingDelay is 30 s)")
	klog.InitFlags(nil)
	flag.Parse()
	if *registryDir == "" {
		klog.Fatal("-registry-dir is required")
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(healthFeatureGates(*health)); err != nil {
		klog.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The kubelet passes its API client and its node lister; this peer a
	// client of the given kubeconfig and a GET of the node.
	var client kubernetes.Interface
	var getNode func(context.Context) (*v1.Node, error)
	if *kubeconfig != "" {
		if *nodeName == "" {
			klog.Fatal("-node-name is required with -kubeconfig")
		}
		config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			klog.Fatal(err)
		}
		clientset, err := kubernetes.NewForConfig(config)
		if err != nil {
			klog.Fatal(err)
		}
		client = clientset
		getNode = func(ctx context.Context) (*v1.Node, error) {
			return clientset.CoreV1().Nodes().Get(ctx, *nodeName, metav1.GetOptions{})
		}
	}
	pm := newDRAPluginManager(ctx, client, getNode, *wipingDelay)
	defer pm.Stop()

	manager := pluginmanager.NewPluginManager(*registryDir, &record.FakeRecorder{})
	manager.AddHandler(registerapi.DRAPlugin, reportingHandler{pm})
	stop := make(chan struct{})
	go runPluginManager(ctx, manager, stop)
	out.emit(map[string]any{"event": "ready", "registryDir": *registryDir})

	var wg sync.WaitGroup
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<24)
	for scanner.Scan() {
		var cmd command
		if err := json.Unmarshal(scanner.Bytes(), &cmd); err != nil {
			out.emit(map[string]any{"event": "bad-command", "error": err.Error()})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.emit(run(ctx, pm, cmd))
		}()
	}
	wg.Wait()
	close(stop)
	if err := scanner.Err(); err != nil {
		klog.Fatal(err)
	}
}
