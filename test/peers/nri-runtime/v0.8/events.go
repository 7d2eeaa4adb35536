package main

import (
	"context"

	"github.com/containerd/nri/pkg/adaptation"
)

// NRI v0.8 (containerd 2.0/2.1) relays pod events as StateChange.
const nriVersion = "v0.8.0"

func runPod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.RunPodSandbox(ctx, &adaptation.StateChangeEvent{Pod: pod})
}

func stopPod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.StopPodSandbox(ctx, &adaptation.StateChangeEvent{Pod: pod})
}

func removePod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.RemovePodSandbox(ctx, &adaptation.StateChangeEvent{Pod: pod})
}
