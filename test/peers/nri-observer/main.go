// nri-observer is bench/nri-attach's stopwatch inside the container runtime:
// an NRI plugin registered before netclaim (index 00), so that it sees each
// RunPodSandbox before netclaim does. For a pod annotated with
// bench.netclaim.dev/watch ("<ifname> <cidr> <mtu>") it stamps
// RunPodSandbox, watches the pod's network namespace over netlink until that
// interface is up with the address and MTU, and stamps CreateContainer.
//
// A pod annotated with bench.netclaim.dev/bare-move ("<host device>") also
// gets that device moved in and configured by this plugin, synchronously
// inside RunPodSandbox, with nothing else around it (the way the reference
// driver attaches): the floor netclaim is compared with, on the same node
// and the same runtime path. It goes back to the host at StopPodSandbox.
//
// Each measurement is one JSON line on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const (
	watchAnnotation    = "bench.netclaim.dev/watch"
	bareMoveAnnotation = "bench.netclaim.dev/bare-move"
	watchTimeout       = 30 * time.Second
)

type record struct {
	Pod   string  `json:"pod"`
	Event string  `json:"event"`
	Ms    float64 `json:"ms"`
	Error string  `json:"error,omitempty"`
}

type expectation struct {
	name string
	addr *netlink.Addr
	mtu  int
}

type plugin struct {
	out     *json.Encoder
	outMu   sync.Mutex
	mu      sync.Mutex
	started map[string]time.Time // by pod UID, RunPodSandbox's arrival
	created map[string]bool
}

func (p *plugin) emit(r record) {
	p.outMu.Lock()
	defer p.outMu.Unlock()
	_ = p.out.Encode(r)
}

func podName(pod *api.PodSandbox) string { return pod.GetNamespace() + "/" + pod.GetName() }

func netnsPath(pod *api.PodSandbox) string {
	for _, ns := range pod.GetLinux().GetNamespaces() {
		if ns.GetType() == "network" {
			return ns.GetPath()
		}
	}
	return ""
}

func parseExpectation(value string) (expectation, error) {
	fields := strings.Fields(value)
	if len(fields) != 3 {
		return expectation{}, fmt.Errorf("%s must be \"<ifname> <cidr> <mtu>\", got %q", watchAnnotation, value)
	}
	addr, err := netlink.ParseAddr(fields[1])
	if err != nil {
		return expectation{}, err
	}
	mtu, err := strconv.Atoi(fields[2])
	if err != nil {
		return expectation{}, err
	}
	return expectation{name: fields[0], addr: addr, mtu: mtu}, nil
}

func (p *plugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	start := time.Now()
	value, ok := pod.GetAnnotations()[watchAnnotation]
	if !ok {
		return nil
	}
	p.mu.Lock()
	p.started[pod.GetUid()] = start
	p.mu.Unlock()
	want, err := parseExpectation(value)
	if err != nil {
		p.emit(record{Pod: podName(pod), Event: "configured", Error: err.Error()})
		return nil
	}
	path := netnsPath(pod)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		p.emit(record{Pod: podName(pod), Event: "configured", Error: err.Error()})
		return nil
	}
	// Watching starts before anything can change, so no change is missed.
	configured := watch(ns, want)
	go func() {
		defer ns.Close()
		err := <-configured
		r := record{Pod: podName(pod), Event: "configured", Ms: ms(time.Since(start))}
		if err != nil {
			r.Error = err.Error()
		}
		p.emit(r)
	}()
	if device, ok := pod.GetAnnotations()[bareMoveAnnotation]; ok {
		if err := bareMove(device, ns, want); err != nil {
			p.emit(record{Pod: podName(pod), Event: "bare_move", Error: err.Error()})
			return err
		}
		p.emit(record{Pod: podName(pod), Event: "bare_move", Ms: ms(time.Since(start))})
	}
	return nil
}

func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, _ *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.mu.Lock()
	start, ok := p.started[pod.GetUid()]
	first := ok && !p.created[pod.GetUid()]
	if first {
		p.created[pod.GetUid()] = true
	}
	p.mu.Unlock()
	if first {
		p.emit(record{Pod: podName(pod), Event: "create_container", Ms: ms(time.Since(start))})
	}
	return nil, nil, nil
}

func (p *plugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	device, ok := pod.GetAnnotations()[bareMoveAnnotation]
	if !ok {
		return nil
	}
	want, err := parseExpectation(pod.GetAnnotations()[watchAnnotation])
	if err != nil {
		return nil
	}
	if err := bareReturn(device, netnsPath(pod), want.name); err != nil {
		p.emit(record{Pod: podName(pod), Event: "bare_return", Error: err.Error()})
	}
	return nil
}

// Synchronize is the runtime's answer to the registration: from here on, events arrive.
func (p *plugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	p.emit(record{Event: "synchronized"})
	return nil, nil
}

func (p *plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.mu.Lock()
	delete(p.started, pod.GetUid())
	delete(p.created, pod.GetUid())
	p.mu.Unlock()
	return nil
}

// watch reports on the channel once the expected interface is up with its
// address and MTU in ns, from netlink's link and address notifications.
func watch(ns netns.NsHandle, want expectation) <-chan error {
	result := make(chan error, 1)
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	nsCopy := ns
	errs := make(chan error, 2)
	onErr := func(err error) { errs <- err }
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{Namespace: &nsCopy, ErrorCallback: onErr}); err != nil {
		result <- err
		return result
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{Namespace: &nsCopy, ErrorCallback: onErr}); err != nil {
		close(done)
		result <- err
		return result
	}
	handle, err := netlink.NewHandleAt(ns)
	if err != nil {
		close(done)
		result <- err
		return result
	}
	go func() {
		defer handle.Close()
		defer close(done)
		timeout := time.After(watchTimeout)
		for {
			if configured(handle, want) {
				result <- nil
				return
			}
			select {
			case <-links:
			case <-addrs:
			case err := <-errs:
				result <- err
				return
			case <-timeout:
				result <- fmt.Errorf("%s not configured after %s", want.name, watchTimeout)
				return
			}
		}
	}()
	return result
}

func configured(handle *netlink.Handle, want expectation) bool {
	link, err := handle.LinkByName(want.name)
	if err != nil {
		return false
	}
	attrs := link.Attrs()
	if attrs.Flags&net.FlagUp == 0 || attrs.MTU != want.mtu {
		return false
	}
	addrs, err := handle.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IPNet.String() == want.addr.IPNet.String() {
			return true
		}
	}
	return false
}

// bareMove moves device into ns and configures it: the least any driver does.
func bareMove(device string, ns netns.NsHandle, want expectation) error {
	link, err := netlink.LinkByName(device)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(link, int(ns)); err != nil {
		return err
	}
	handle, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer handle.Close()
	if link, err = handle.LinkByName(device); err != nil {
		return err
	}
	if err := handle.LinkSetName(link, want.name); err != nil {
		return err
	}
	if err := handle.LinkSetMTU(link, want.mtu); err != nil {
		return err
	}
	if err := handle.AddrAdd(link, want.addr); err != nil {
		return err
	}
	return handle.LinkSetUp(link)
}

// bareReturn puts the device back on the host under its own name.
func bareReturn(device, path, podIfname string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	handle, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer handle.Close()
	link, err := handle.LinkByName(podIfname)
	if err != nil {
		return err
	}
	if err := handle.LinkSetDown(link); err != nil {
		return err
	}
	if err := handle.LinkSetName(link, device); err != nil {
		return err
	}
	host, err := netns.Get()
	if err != nil {
		return err
	}
	defer host.Close()
	return handle.LinkSetNsFd(link, int(host))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func main() {
	socket := flag.String("socket", "", "NRI socket path")
	flag.Parse()
	p := &plugin{out: json.NewEncoder(os.Stdout), started: map[string]time.Time{}, created: map[string]bool{}}
	s, err := stub.New(p, stub.WithSocketPath(*socket), stub.WithPluginName("bench-observer"), stub.WithPluginIdx("00"),
		stub.WithOnClose(func() { os.Exit(0) }))
	if err == nil {
		err = s.Run(context.Background())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nri-observer: %v\n", err)
		os.Exit(1)
	}
}
