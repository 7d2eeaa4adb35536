package main

import (
	"context"

	"github.com/containerd/nri/pkg/adaptation"
)

// NRI before v0.12 relays pod events as StateChange.

func runPod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.RunPodSandbox(ctx, &adaptation.StateChangeEvent{Pod: pod})
}

func stopPod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.StopPodSandbox(ctx, &adaptation.StateChangeEvent{Pod: pod})
}

func removePod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.RemovePodSandbox(ctx, &adaptation.StateChangeEvent{Pod: pod})
}
