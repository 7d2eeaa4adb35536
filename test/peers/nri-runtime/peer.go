// nri-runtime is the runtime side of NRI for netclaim's conformance suite: it
// embeds github.com/containerd/nri/pkg/adaptation exactly as containerd and
// CRI-O do, and is driven by the TypeScript tests over stdio.
//
// This file is shared by the v0.8 and v0.12 modules (each links it in); the
// per-version event calls live in each module's events.go.
//
// Protocol: one JSON command per stdin line {"id":N,"op":...}; every command
// gets one reply line {"id":N,"ok":bool,"error":"...","result":...}. Events
// the test waits for arrive as {"event":"..."} lines. Logs go to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	nrigen "github.com/containerd/nri/pkg/runtime-tools/generate"
	rgen "github.com/opencontainers/runtime-tools/generate"
)

type podSpec struct {
	ID          string            `json:"id"`
	UID         string            `json:"uid"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Netns       string            `json:"netns"`
	IPs         []string          `json:"ips"`
	Annotations map[string]string `json:"annotations"`
}

type containerSpec struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	PodID string `json:"podId"`
}

type command struct {
	ID        int64          `json:"id"`
	Op        string         `json:"op"`
	Pod       *podSpec       `json:"pod"`
	Container *containerSpec `json:"container"`
	// setState: synthetic pods (each with one container) padded with an
	// annotation of padBytes, so the state can exceed one ttrpc message.
	Pods     int `json:"pods"`
	PadBytes int `json:"padBytes"`
	// bench: round trips to time after warmup untimed ones.
	N      int `json:"n"`
	Warmup int `json:"warmup"`
}

type reply struct {
	ID     int64  `json:"id"`
	OK     bool   `json:"ok"`
	Error  string `json:"error,omitempty"`
	Result any    `json:"result,omitempty"`
}

var (
	outMu sync.Mutex
	out   = json.NewEncoder(os.Stdout)
)

func emit(v any) {
	outMu.Lock()
	defer outMu.Unlock()
	if err := out.Encode(v); err != nil {
		fmt.Fprintf(os.Stderr, "nri-runtime: write stdout: %v\n", err)
		os.Exit(1)
	}
}

type peer struct {
	r          *adaptation.Adaptation
	mu         sync.Mutex
	started    bool
	pods       []*adaptation.PodSandbox
	containers []*adaptation.Container
}

func main() {
	socket := flag.String("socket", "", "NRI socket path to listen on")
	pluginPath := flag.String("plugin-path", "", "directory of pre-launched plugins (NN-name executables)")
	requestTimeout := flag.Duration("request-timeout", 2*time.Second, "plugin request timeout")
	registrationTimeout := flag.Duration("registration-timeout", 5*time.Second, "plugin registration timeout")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "nri-runtime: -socket is required")
		os.Exit(2)
	}

	adaptation.SetPluginRequestTimeout(*requestTimeout)
	adaptation.SetPluginRegistrationTimeout(*registrationTimeout)

	p := &peer{}
	opts := []adaptation.Option{adaptation.WithSocketPath(*socket)}
	if *pluginPath != "" {
		opts = append(opts, adaptation.WithPluginPath(*pluginPath), adaptation.WithPluginConfigPath(*pluginPath))
	} else {
		// An empty directory: no pre-launched plugins unless asked for.
		dir, err := os.MkdirTemp("", "nri-rt-")
		must(err)
		defer os.RemoveAll(dir)
		opts = append(opts, adaptation.WithPluginPath(dir), adaptation.WithPluginConfigPath(dir))
	}
	r, err := adaptation.New("nri-runtime-peer", nriVersion, p.synchronize, p.updateContainers, opts...)
	must(err)
	p.r = r
	must(r.Start())
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	emit(map[string]any{"event": "ready", "nriVersion": nriVersion})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			emit(reply{ID: -1, Error: "bad command: " + err.Error()})
			continue
		}
		if cmd.Op == "quit" {
			break
		}
		res, err := p.handle(cmd)
		if err != nil {
			emit(reply{ID: cmd.ID, Error: err.Error()})
		} else {
			emit(reply{ID: cmd.ID, OK: true, Result: res})
		}
	}
	r.Stop()
}

func must(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "nri-runtime: %v\n", err)
		os.Exit(1)
	}
}

// synchronize hands the current state to a newly registered plugin and
// reports what the plugin answered.
func (p *peer) synchronize(ctx context.Context, cb adaptation.SyncCB) error {
	p.mu.Lock()
	pods, ctrs, started := p.pods, p.containers, p.started
	p.mu.Unlock()
	updates, err := cb(ctx, pods, ctrs)
	name := "sync"
	if !started {
		name = "startupSync" // Start() synchronizes the pre-launched plugins, if any
	}
	ev := map[string]any{"event": name, "pods": len(pods), "containers": len(ctrs), "updates": updateIDs(updates)}
	if err != nil {
		ev["error"] = err.Error()
	}
	emit(ev)
	return err
}

func (p *peer) updateContainers(_ context.Context, updates []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
	emit(map[string]any{"event": "updateContainers", "updates": updateIDs(updates)})
	return nil, nil
}

func updateIDs(updates []*adaptation.ContainerUpdate) []string {
	ids := []string{}
	for _, u := range updates {
		ids = append(ids, u.GetContainerId())
	}
	return ids
}

func (p *peer) handle(cmd command) (any, error) {
	// Wait until any plugin being synchronized has been added, as the CRI
	// server does before it relays an event.
	p.r.BlockPluginSync().Unblock()
	ctx := context.Background()
	switch cmd.Op {
	case "setState":
		p.setState(cmd.Pods, cmd.PadBytes)
		return nil, nil
	case "addRunningPod":
		p.addRunningPod(toPod(cmd.Pod))
		return nil, nil
	case "runPod":
		return nil, runPod(ctx, p.r, toPod(cmd.Pod))
	case "stopPod":
		return nil, stopPod(ctx, p.r, toPod(cmd.Pod))
	case "removePod":
		return nil, removePod(ctx, p.r, toPod(cmd.Pod))
	case "createContainer":
		return p.createContainer(ctx, cmd)
	case "bench":
		return p.bench(ctx, cmd)
	}
	return nil, fmt.Errorf("unknown op %q", cmd.Op)
}

func toPod(s *podSpec) *adaptation.PodSandbox {
	if s == nil {
		s = &podSpec{}
	}
	pod := &adaptation.PodSandbox{
		Id: s.ID, Uid: s.UID, Name: s.Name, Namespace: s.Namespace,
		Annotations: s.Annotations, Ips: s.IPs,
		Linux: &adaptation.LinuxPodSandbox{Namespaces: []*adaptation.LinuxNamespace{{Type: "pid"}}},
	}
	if s.Netns != "" {
		pod.Linux.Namespaces = append(pod.Linux.Namespaces, &adaptation.LinuxNamespace{Type: "network", Path: s.Netns})
	}
	return pod
}

func (p *peer) setState(n, pad int) {
	pods := make([]*adaptation.PodSandbox, 0, n)
	ctrs := make([]*adaptation.Container, 0, n)
	padding := strings.Repeat("x", pad)
	for i := range n {
		id := fmt.Sprintf("pod-%04d", i)
		pod := toPod(&podSpec{
			ID: id, UID: "uid-" + id, Name: id, Namespace: "default",
			Netns: "/var/run/netns/cni-" + id, IPs: []string{fmt.Sprintf("203.0.113.%d", i%250+1)},
			Annotations: map[string]string{"pad": padding},
		})
		pods = append(pods, pod)
		ctrs = append(ctrs, &adaptation.Container{
			Id: "ctr-" + id, PodSandboxId: id, Name: "main", State: adaptation.ContainerState_CONTAINER_RUNNING,
		})
	}
	p.mu.Lock()
	p.pods, p.containers = pods, ctrs
	p.mu.Unlock()
}

// addRunningPod makes a pod part of the state the next Synchronize reports,
// as a runtime that started it while the plugin was away would.
func (p *peer) addRunningPod(pod *adaptation.PodSandbox) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods = append(p.pods, pod)
}

type deviceJSON struct {
	Path     string `json:"path"`
	Type     string `json:"type"`
	Major    int64  `json:"major"`
	Minor    int64  `json:"minor"`
	FileMode uint32 `json:"fileMode"`
	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
}

// createContainer relays CreateContainer and applies the adjustment the
// runtime collected from its plugins (after its merge and conflict checks) to
// an OCI spec with NRI's own generator, as containerd does, then reports the
// devices the container's spec ends up with.
func (p *peer) createContainer(ctx context.Context, cmd command) (any, error) {
	c := cmd.Container
	if c == nil {
		return nil, fmt.Errorf("createContainer needs a container")
	}
	req := &adaptation.CreateContainerRequest{
		Pod:       toPod(cmd.Pod),
		Container: &adaptation.Container{Id: c.ID, PodSandboxId: c.PodID, Name: c.Name, State: adaptation.ContainerState_CONTAINER_CREATED},
	}
	resp, err := p.r.CreateContainer(ctx, req)
	if err != nil {
		return nil, err
	}
	g, err := rgen.New("linux")
	if err != nil {
		return nil, err
	}
	g.Config.Linux.Devices = nil
	if err := nrigen.SpecGenerator(&g).Adjust(resp.GetAdjust()); err != nil {
		return nil, fmt.Errorf("apply adjustment to the OCI spec: %w", err)
	}
	devices := []deviceJSON{}
	for _, d := range g.Config.Linux.Devices {
		dj := deviceJSON{Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor}
		if d.FileMode != nil {
			dj.FileMode = uint32(*d.FileMode)
		}
		if d.UID != nil {
			dj.UID = *d.UID
		}
		if d.GID != nil {
			dj.GID = *d.GID
		}
		devices = append(devices, dj)
	}
	return map[string]any{"devices": devices}, nil
}

// bench times RunPodSandbox round trips through every connected plugin.
func (p *peer) bench(ctx context.Context, cmd command) (any, error) {
	pod := toPod(&podSpec{ID: "bench", UID: "uid-bench", Name: "bench", Namespace: "default", Netns: "/var/run/netns/cni-bench"})
	for range cmd.Warmup {
		if err := runPod(ctx, p.r, pod); err != nil {
			return nil, err
		}
	}
	samples := make([]float64, 0, cmd.N)
	for range cmd.N {
		start := time.Now()
		if err := runPod(ctx, p.r, pod); err != nil {
			return nil, err
		}
		samples = append(samples, float64(time.Since(start).Nanoseconds())/1e6)
	}
	sort.Float64s(samples)
	pct := func(q float64) float64 { return samples[int(q*float64(len(samples)-1))] }
	return map[string]any{"n": len(samples), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": samples[len(samples)-1]}, nil
}
